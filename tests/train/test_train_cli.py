"""`ftstudio train` and `ftstudio chat` through the real entry point: kill -9 and resume, Ctrl-C, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ftstudio.train.runs import list_runs

SETTINGS = {"learning_rate": 3e-3, "batch_size": 2, "warmup_ratio": 0.0, "max_steps": 16, "save_every": 3}
# A model big enough that a step takes a noticeable moment, so the kill lands mid-run.
BIGGER = {"hidden_size": 160, "layers": 3, "intermediate_size": 384}


def start(workspace: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "FTSTUDIO_ROOT": str(workspace), "NO_COLOR": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "ftstudio", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, f"the run ended early: {proc.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline, "timed out waiting for the run"
        time.sleep(0.02)


@pytest.mark.slow
def test_sigkill_then_resume_ends_with_the_uninterrupted_loss(cli, workspace, make_project):
    from ftstudio.train.runner import train

    project = make_project("llama", model_options=BIGGER, **SETTINGS)
    whole = train(project, project.settings().train)  # the same core the command calls, without its start-up

    proc = start(workspace, "train", project.name, "--json")
    runs_before = {r.id for r in list_runs(project)}

    def new_run():
        fresh = [r for r in list_runs(project) if r.id not in runs_before]
        return fresh[0] if fresh else None

    wait_for(lambda: new_run() is not None and new_run().checkpoints(), proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    killed = new_run()
    assert proc.returncode == -signal.SIGKILL
    assert killed.status == "running" and killed.info["steps"] < 16  # it really died mid-run
    resumed = cli("train", project.name, "--resume", killed.id, "--json")
    assert resumed.code == 0, resumed.stderr
    summary = resumed.json()
    assert {"run_id", "backend", "steps", "final_train_loss", "final_eval_loss", "run_dir"} <= set(summary)
    assert summary["run_id"] == killed.id and summary["steps"] == 16
    assert Path(summary["run_dir"], "adapter", "adapter_model.safetensors").is_file()
    assert summary["final_train_loss"] == pytest.approx(whole.final_train_loss, rel=1e-4)
    assert not list(killed.path.glob(".checkpoint-*.tmp"))


def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(cli, workspace, make_project, tiny_model):
    project = make_project("llama", model_options=BIGGER, **{**SETTINGS, "save_every": 1000, "max_steps": 200})
    proc = start(workspace, "train", project.name)
    wait_for(lambda: list_runs(project) and len(list_runs(project)[-1].metrics()) >= 2, proc)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    run = list_runs(project)[-1]
    assert run.status == "stopped" and 2 <= run.info["steps"] < 200
    assert [p.name for p in run.checkpoints()] == [f"checkpoint-{run.info['steps']}"]
    assert "stopping after this step" in stderr
    assert f"resume with: ftstudio train {project.name} --resume {run.id}" in stdout
    # A run belongs to its base model: resuming it on another one is refused.
    other = cli("train", project.name, "--base-model", str(tiny_model("qwen2")), "--resume", run.id)
    assert other.code == 2 and "was trained on" in other.stderr


def test_bad_input_exit_codes(cli, make_project):
    project = make_project("llama")
    project.sft_data.unlink()
    missing = cli("train", project.name)
    assert missing.code == 2 and "ftstudio generate" in missing.stderr
    project.sft_data.write_text("")
    empty = cli("train", project.name, "--json")
    assert empty.code == 2 and "has no examples" in empty.json()["error"]
    project.sft_data.write_text('{"instruction": "a", "output": "b"}\n{"instruction": "a"}\nnot json\n')
    bad = cli("train", project.name)
    assert bad.code == 2 and "line 2" in bad.stderr and "line 3" in bad.stderr
    project.sft_data.write_text('{"instruction": "a", "output": "b"}\n' * 3)
    qlora = cli("train", project.name, "--method", "qlora")
    assert qlora.code == 3 and "--method lora" in qlora.stderr
    nope = cli("train", project.name, "--resume", "20990101-000000-dead")
    assert nope.code == 2 and "no run" in nope.stderr


@pytest.mark.slow
def test_chat_streams_the_tuned_models_answer(cli, make_project):
    project = make_project("qwen2", max_steps=30, learning_rate=5e-3, batch_size=4, warmup_ratio=0.0)
    from ftstudio.train.runner import train

    train(project, project.settings().train)
    answer = cli("chat", project.name, "What is 2 plus 3?", "--json", "--max-new-tokens", "12")
    assert answer.code == 0, answer.stderr
    data = answer.json()
    assert data["run"] == list_runs(project)[-1].id and "plus" in data["answer"]
    human = cli("chat", project.name, "What is 2 plus 3?", "--max-new-tokens", "12")
    assert human.stdout.strip() == data["answer"]


def test_chat_without_a_run_says_how_to_get_one(cli, make_project):
    project = make_project("llama")
    result = cli("chat", project.name, "hello")
    assert result.code == 2 and f"ftstudio train {project.name}" in result.stderr


def test_run_json_is_what_the_export_stage_reads(make_project):
    project = make_project("llama", max_steps=2, learning_rate=1e-3)
    from ftstudio.train.runner import train

    result = train(project, project.settings().train)
    info = json.loads((result.run_dir / "run.json").read_text())
    for key in ("id", "base_model", "method", "backend", "backend_reason", "settings", "status", "error",
                "started_at", "finished_at", "steps", "final_train_loss", "final_eval_loss"):  # fmt: skip
        assert key in info, key
    config = json.loads((result.run_dir / "adapter" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == project.settings().base_model.model
