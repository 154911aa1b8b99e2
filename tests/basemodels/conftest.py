"""Fixtures of the base-model stage: a hub cache laid out as huggingface_hub writes it, and machine descriptions."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ftstudio.basemodels.hardware import Hardware
from ftstudio.basemodels.resolve import CONFIG_FILE, TOKENIZER_FILES

GIB = 2**30


@pytest.fixture
def cpu_machine() -> Hardware:
    """A machine like this one: no GPU, 24 GiB RAM."""
    return Hardware(cuda=False, gpu_name=None, vram_total=0, vram_free=0, ram_total=24 * GIB, ram_available=20 * GIB)


@pytest.fixture
def cuda_machine() -> Hardware:
    """A machine with one 24 GiB CUDA GPU (the rules are pure functions of this description)."""
    return Hardware(cuda=True, gpu_name="NVIDIA L4", vram_total=24 * GIB, vram_free=23 * GIB, ram_total=64 * GIB,
                    ram_available=60 * GIB, bf16=True)  # fmt: skip


@pytest.fixture
def hf_cache(tmp_path, tiny_model):
    """`put(repo_id, arch)`: copy a kit model's config and tokenizer files into a hub cache under tmp_path, as
    `models--org--name/snapshots/<rev>/…` with `refs/main` naming the revision. Returns the cache folder."""
    cache = tmp_path / "hf-cache"

    def put(repo_id: str, arch: str = "qwen2", **options) -> Path:
        source = tiny_model(arch, **options)
        repo = cache / ("models--" + repo_id.replace("/", "--"))
        revision = "0123456789abcdef0123456789abcdef01234567"
        snapshot = repo / "snapshots" / revision
        snapshot.mkdir(parents=True)
        for name in (CONFIG_FILE, *TOKENIZER_FILES):
            if (source / name).is_file():
                shutil.copy(source / name, snapshot / name)
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text(revision)
        return cache

    return put
