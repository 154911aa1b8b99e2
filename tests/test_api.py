"""The Python API: the example in docs/api.md runs as written, and the API, the CLI and a job give the same result
for the same request."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import ftstudio

DOCS = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def _first_example() -> str:
    return re.search(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S).group(1)


def test_importing_the_api_stays_light():
    heavy = "('torch', 'transformers', 'gradio', 'click')"
    code = f"import sys, ftstudio; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.slow
@pytest.mark.timeout(1800)  # real weights: import, train, card, GGUF export read back, chat (minutes on 2 busy cores)
def test_the_documented_pipeline_runs_offline_on_the_example(tmp_path, monkeypatch, capsys):
    pytest.importorskip("ftstudio.train.runner")
    monkeypatch.chdir(tmp_path)
    exec(compile(_first_example(), str(DOCS), "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].endswith("sourdough.md") and printed[1] in ("ok", "warn")
    runs = list((tmp_path / "workspace" / "projects" / "example" / "runs").iterdir())
    assert len(runs) == 1 and json.loads((runs[0] / "run.json").read_text())["status"] == "completed"
    assert any(line.startswith("train ") for line in printed)  # progress came through the callback
    assert any(".gguf" in line for line in printed)
    assert (tmp_path / "workspace" / "projects" / "example" / "exports").is_dir()


def test_requests_are_checked_before_work_naming_the_field(workspace):
    project = ftstudio.Project.create("demo", workspace)
    with pytest.raises(ftstudio.BadInput, match="pairs: Input should be greater than or equal to 1"):
        ftstudio.generate(project, pairs=0, model="m")
    with pytest.raises(ftstudio.BadInput, match="model: no helper model chosen"):
        ftstudio.generate(project, pairs=5)
    with pytest.raises(ftstudio.BadInput, match="rank"):
        ftstudio.train(project, base_model="x/y", rank=0)
    with pytest.raises(ftstudio.BadInput, match="unknown setting"):
        ftstudio.train(project, no_such_setting=1)
    with pytest.raises(ftstudio.BadInput, match="model: no helper model chosen"):
        ftstudio.make_eval_set(project, make_eval=3, per_chunk=2, save=True)
    with pytest.raises(ftstudio.BadInput, match="passages: Input should be greater than or equal to 1"):
        ftstudio.report_card(project, passages=0, judge_model="j")
    assert project.settings() == ftstudio.ProjectSettings()  # nothing was saved


def test_overrides_are_for_this_call_unless_saved(workspace, tmp_path):
    project = ftstudio.Project.create("demo", workspace)
    doc = tmp_path / "bees.md"
    doc.write_text("# Bees\n\nHoney bees live in colonies of many thousands of workers and one queen.\n")
    report = ftstudio.ingest(project, paths=[doc], chunk_tokens=128, overlap=16)
    assert report.chunk_tokens == 128 and project.settings().knowledge.chunk_tokens == 512
    ftstudio.ingest(project, paths=[doc], chunk_tokens=128, overlap=16, save=True)
    assert project.settings().knowledge.chunk_tokens == 128


def test_api_cli_and_job_give_the_same_search_and_ingest(workspace, tmp_path):
    from ftstudio.jobs import JobRegistry

    project = ftstudio.Project.create("demo", workspace)
    doc = tmp_path / "bees.md"
    doc.write_text("# Bees\n\nHoney bees live in colonies of many thousands of workers and one queen.\n")
    request = ftstudio.IngestRequest(paths=[doc], overrides={"chunk_tokens": 128, "overlap": 16})
    jobs = JobRegistry(workspace)
    state = jobs.wait("demo", jobs.start("demo", request).id, timeout=180)
    assert state.status == "done", state.error
    # The command the job ran, typed by a user, gives the same answer as the API (re-ingest: unchanged).
    api = ftstudio.ingest(project, request).to_dict()
    argv = shlex.split(state.cli)[1:]
    cli = subprocess.run([sys.executable, "-m", "ftstudio", *argv, "--json"], capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr
    for doc_result in (api, json.loads(cli.stdout), state.result):
        assert doc_result["chunk_tokens"] == 128 and doc_result["overlap"] == 16
    assert api["documents"] == json.loads(cli.stdout)["documents"]

    hits = ftstudio.search(project, query="queen colonies", k=3)
    shown = subprocess.run([sys.executable, "-m", "ftstudio", "search", "demo", "queen colonies", "-k", "3", "--json",
                            "--root", str(workspace)], capture_output=True, text=True, check=True)  # fmt: skip
    assert [h.chunk.id for h in hits] == [r["chunk_id"] for r in json.loads(shown.stdout)]


def test_example_files_ship_inside_the_package():
    from importlib import resources

    files = resources.files("ftstudio") / "examples"
    assert (files / "sourdough.md").is_file() and (files / "sft_data.jsonl").is_file()
    # Declared as package data, so a wheel carries them.
    toml = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert '"**/*.jsonl"' in toml and '"**/*.md"' in toml


@pytest.mark.slow
def test_a_base_model_is_this_runs_unless_saved_and_saved_only_after_its_checks(workspace, tiny_model):
    pytest.importorskip("ftstudio.train.runner")
    from importlib import resources

    project = ftstudio.Project.create("demo", workspace)
    project.sft_data.write_bytes((resources.files("ftstudio") / "examples" / "sft_data.jsonl").read_bytes())
    model = str(tiny_model("llama"))
    with pytest.raises(ftstudio.BadInput):  # a model that fails its checks is not saved, even with save
        ftstudio.train(project, base_model=str(workspace / "no-model"), probe_only=True, save=True)
    assert project.settings() == ftstudio.ProjectSettings()
    probed = ftstudio.train(project, base_model=model, probe_only=True, max_steps=2, probe_steps=1)
    assert probed.status == "probed" and project.settings().base_model.model is None
    ftstudio.train(project, base_model=model, probe_only=True, max_steps=2, probe_steps=1, save=True)
    settings = project.settings()
    assert settings.base_model.model == model and (settings.train.max_steps, settings.train.probe_steps) == (2, 1)
