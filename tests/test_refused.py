"""A refused command changes nothing (issue 12, item 8): every command that exits 2 or 3 leaves project.toml, the
data and the knowledge store byte-identical, and says why without a traceback."""

from __future__ import annotations

import hashlib
import json
import pickle

import pytest

from ftstudio.knowledge.ingest import ingest
from ftstudio.project import Project
from ftstudio.train.runs import RunRecord

NO_KEYS = {"OPENROUTER_API_KEY": "", "OPENAI_API_KEY": "", "OLLAMA_HOST": ""}


def fingerprint(project: Project) -> dict[str, str]:
    files = [project.settings_path, project.sft_data, project.knowledge_db]
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture
def project(workspace, tiny_model, tmp_path):
    project = Project.create("p", workspace)
    project.update_settings("base_model", model=str(tiny_model("llama")))
    project.data_dir.mkdir(exist_ok=True)
    project.sft_data.write_text(json.dumps({"instruction": "What do bees make?", "output": "Honey."}) + "\n")
    (tmp_path / "bees.md").write_text("# Bees\n\nHoney bees live in colonies.\n")
    ingest(project, [tmp_path / "bees.md"])
    return project


def test_every_refused_command_changes_nothing(cli, project, tiny_model, tmp_path):
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes('{"instruction": "café", "output": "x"}\n'.encode("latin-1"))
    other_base = str(tiny_model("qwen2"))
    doc = str(tmp_path / "bees.md")
    missing = str(tmp_path / "no-such-model")
    refused = [
        (2, "train", "p", "--base-model", missing),
        # A model that passes its own check, refused by a later one (QLoRA needs CUDA): still not saved.
        (3, "train", "p", "--base-model", other_base, "--method", "qlora"),
        (2, "train", "p", "--base-model", other_base, "--epochs", "-1"),
        (2, "train", "p", "--base-model", other_base, "--resume", "nope"),
        (3, "generate", "p", "--provider", "ollama", "--base-url", "http://127.0.0.1:9", "--model", "m",
         "--concurrency", "3"),  # fmt: skip
        (3, "generate", "p", "--provider", "openrouter", "--model", "x/y", "--per-chunk", "2"),
        (2, "data", "p", "--import", str(latin)),
        (2, "ingest", "p", doc, str(tmp_path / "missing.md")),
        (2, "docs", "p", "--remove", doc, "--remove", "999"),
        (2, "models", "use", "p", missing),
        (2, "export", "p", "--format", "gguf"),
        (2, "chat", "p", "hi"),
        (2, "search", "p", "bees", "-k", "0"),
        (2, "init", "p"),
    ]
    for code, *args in refused:
        before = fingerprint(project)
        result = cli(*args, env=NO_KEYS)
        assert result.code == code, (args, result.code, result.stderr)
        assert "Traceback" not in result.stderr, (args, result.stderr)
        assert fingerprint(project) == before, args


def test_pickle_only_adapter_is_refused_by_name(cli, project):
    run = project.runs_dir / "20261201-000000-abcd"
    (run / "adapter").mkdir(parents=True)
    (run / "adapter" / "adapter_config.json").write_text("{}")
    # A pickle that would run code when unpickled: it must never be opened.
    (run / "adapter" / "adapter_model.bin").write_bytes(pickle.dumps({"weights": [1.0]}))
    base = project.settings().base_model.model
    RunRecord(run.name, base, status="completed").write(run)
    before = fingerprint(project)
    result = cli("chat", "p", "hi")
    assert result.code == 2, result.stderr
    assert "no adapter_model.safetensors (only adapter_model.bin: pickle files" in result.stderr
    assert str(run / "adapter") in result.stderr and "Traceback" not in result.stderr
    exported = cli("export", "p", "--format", "adapter")
    assert exported.code == 2 and "adapter_model.safetensors" in exported.stderr
    assert fingerprint(project) == before
