"""The states a studio test's project starts from (an ingested guide, the example's pairs, a frozen eval set, a copy
of another project), made with the core so that a test clicks only through what it is about."""

from __future__ import annotations

import re
import shutil
from importlib import resources
from pathlib import Path

import pytest

from ftstudio.project import Project

EXAMPLES = resources.files("ftstudio") / "examples"


def project_name(request: pytest.FixtureRequest) -> str:
    """A project name of the test's own: its name (with its parameters), as a safe path component."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", request.node.name.removeprefix("test_")).strip("-_")
    return name[:64] or "project"


def add_guide(project: Project) -> Path:
    """The example's guide copied into uploads/ and ingested with the core, as the studio's Ingest stores it."""
    import ftstudio

    uploads = project.dir / "uploads"
    uploads.mkdir(exist_ok=True)
    guide = uploads / "sourdough.md"
    guide.write_bytes((EXAMPLES / "sourdough.md").read_bytes())
    report = ftstudio.ingest(project, paths=[guide])
    assert not report.failed, report.failed
    return guide


def add_pairs(project: Project, first: int | None = None) -> None:
    """The example's question-answer pairs (the first `first` of them) as the project's data."""
    project.data_dir.mkdir(parents=True, exist_ok=True)
    lines = (EXAMPLES / "sft_data.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    project.sft_data.write_text("".join(lines[:first]), encoding="utf-8")


def make_eval_set(project: Project, questions: int) -> None:
    """A frozen eval set written by an Ollama helper (the test's protocol server) that is gone afterwards: the
    project's helper is then that server's model at an address nothing listens on."""
    import ftstudio
    from protocol_servers import OllamaServer

    with OllamaServer(models=["qwen2:7b"]) as server:
        request = ftstudio.EvalSetRequest(make_eval=questions, provider="ollama", model="qwen2:7b",
                                          base_url=server.url, save=True)  # fmt: skip
        assert ftstudio.make_eval_set(project, request).questions == questions


def copy_project(template: Project, into: Path) -> None:
    """Everything of `template` copied into the project folder `into` (its project.toml included)."""
    shutil.copytree(template.dir, into, dirs_exist_ok=True)
