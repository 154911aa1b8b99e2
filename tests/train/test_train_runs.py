"""run.json as a typed record: old and hand-written files load, and a record writes back what it read."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ftstudio.project import Project
from ftstudio.train.probe import peak_rss_mb
from ftstudio.train.runs import RunRecord, list_runs, load_run
from ftstudio.train.settings import TrainSettings

# run.json as the runner wrote it before the record existed (a stopped run, trimmed settings), plus a key this
# version does not know: it must come back unchanged.
OLD = {
    "id": "20261125-031500-a1b2", "base_model": "/models/tiny", "method": "lora", "backend": "transformers",
    "backend_reason": "auto: no CUDA device, so transformers + PEFT on the CPU",
    "settings": {"max_steps": 10, "batch_size": 4, "system_prompt": "Be brief."}, "started_at": "2026-11-25T03:15:00Z",
    "examples": {"train": 15, "eval": 1, "truncated": 0, "dropped": 0}, "warnings": ["1 line rejected in review"],
    "probe": None, "device": "cpu", "world_size": 2, "sharding": None, "trainable_parameters": 4096,
    "total_steps": 10, "status": "stopped", "error": None, "finished_at": "2026-11-25T03:16:00Z", "steps": 4,
    "final_train_loss": 1.234567, "final_eval_loss": None, "from_a_newer_version": {"kept": True},
}  # fmt: skip


def write(run_dir, content: str):
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(content, encoding="utf-8")


def test_an_old_run_json_loads_and_writes_back_byte_for_byte(workspace):
    project = Project.create("p", workspace)
    text = json.dumps(OLD, indent=2, ensure_ascii=False) + "\n"
    write(project.runs_dir / OLD["id"], text)
    run = load_run(project, OLD["id"])
    record = run.record
    assert (record.status, record.steps, record.world_size, record.final_train_loss) == ("stopped", 4, 2, 1.234567)
    assert run.system_prompt == "Be brief." and run.base_model == "/models/tiny"
    assert record.extra == {"from_a_newer_version": {"kept": True}}
    assert run.info == OLD  # readers that take the whole dict see the file
    run.save()
    assert (run.path / "run.json").read_text(encoding="utf-8") == text


def test_a_minimal_run_json_takes_the_defaults_and_a_broken_one_is_skipped(workspace):
    project = Project.create("p", workspace)
    write(project.runs_dir / "run-1", json.dumps({"base_model": "/models/tiny", "status": "completed"}))
    write(project.runs_dir / "run-2", json.dumps(["not", "a", "run"]))
    write(project.runs_dir / "run-3", "{half")
    (run,) = list_runs(project)
    assert run.id == run.record.id == "run-1" and run.status == "completed"
    assert run.record.steps == 0 and run.record.settings == {} and run.system_prompt is None
    assert run.record.train_settings() == TrainSettings()


def test_transitions_say_where_the_run_stands(tmp_path):
    record = RunRecord.from_dict(OLD, "ignored")
    record.running(4)
    assert (record.status, record.error, record.finished_at, record.steps) == ("running", None, None, 4)
    record.stepped(5, 0.98765432)
    assert (record.steps, record.final_train_loss) == (5, 0.987654)
    record.failed("the loss became nan at step 6")
    assert record.status == "failed" and record.error.startswith("the loss") and record.finished_at
    record.completed(0.5)
    assert (record.status, record.final_eval_loss) == ("completed", 0.5)
    record.write(tmp_path)
    assert RunRecord.read(tmp_path) == record


def test_peak_memory_is_the_process_own_not_its_parent(tmp_path):
    """A child started by fork+exec from a big process: ru_maxrss reports the parent's peak, VmHWM its own."""
    pytest.importorskip("resource")
    status = Path("/proc/self/status")
    if not status.is_file() or "VmHWM" not in status.read_text():
        pytest.skip("no /proc/self/status with VmHWM here")
    big = b"\x01" * (600 << 20)  # written, so resident in this (the parent) process
    code = ("import resource; from ftstudio.train.probe import peak_rss_mb; "
            "print(peak_rss_mb(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    own, maxrss = map(float, out.split())
    del big
    assert maxrss > 600, "ru_maxrss of a child of a big process counts the parent (the case VmHWM avoids)"
    assert 5 < own < 300, own
    assert peak_rss_mb() > 600  # the parent's own peak counts what it wrote
