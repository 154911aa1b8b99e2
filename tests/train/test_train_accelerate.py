"""`ftstudio train` under `accelerate launch`: the written configs, data parallel on two CPU processes (gloo), the
base model sharded with FSDP, and checkpoints that resume under another number of processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
from safetensors.torch import load_file

from ftstudio.errors import Unavailable
from ftstudio.train.launch_configs import write_accelerate_config
from ftstudio.train.runner import train
from ftstudio.train.runs import list_runs
from ftstudio.train.sharding import check_supported

ACCELERATE = [sys.executable, "-c", "from accelerate.commands.accelerate_cli import main; main()", "launch"]
SETTINGS = {"learning_rate": 3e-3, "batch_size": 2, "warmup_ratio": 0.0, "max_steps": 4, "dropout": 0.0,
            "compare_answers": 0, "save_every": 2, "scheduler": "linear"}  # fmt: skip


def _env(workspace: Path) -> dict[str, str]:
    return {**os.environ, "FTSTUDIO_ROOT": str(workspace), "NO_COLOR": "1", "OMP_NUM_THREADS": "1"}


def _config(cli, project, kind: str) -> Path:
    result = cli("train", project.name, "--write-accelerate-config", kind, "--json")
    assert result.code == 0, result.stderr
    return Path(result.json()["config"])


def _launch(config: Path, *args: str, workspace: Path, **popen) -> subprocess.Popen:
    cmd = [*ACCELERATE, "--config_file", str(config), "-m", "ftstudio", "train", *args, "--json"]
    return subprocess.Popen(cmd, env=_env(workspace), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **popen)  # fmt: skip


def _wait(proc: subprocess.Popen, timeout: float = 400) -> None:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]


def _kill_after_first_checkpoint(proc: subprocess.Popen, project, known: set[str] = frozenset()) -> str:
    """SIGKILL the whole launch (launcher and workers) once a new run has a complete checkpoint; returns its id."""
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline:
        runs = [p for p in project.runs_dir.glob("*/checkpoint-*/trainer_state.json") if p.parts[-3] not in known]
        if runs:
            # torchrun starts its workers in process groups of their own: kill the whole tree by pid
            family = [*psutil.Process(proc.pid).children(recursive=True), psutil.Process(proc.pid)]
            for p in family:
                p.send_signal(signal.SIGKILL)
            psutil.wait_procs(family, timeout=30)
            proc.communicate()
            return runs[0].parent.parent.name
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.05)
    raise AssertionError("no checkpoint appeared")


def _adapter(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "adapter" / "adapter_model.safetensors"))


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5)


def test_written_configs_load_in_accelerate(cli, make_project):
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    project = make_project("llama")
    expected = {"ddp": "multi_gpu", "fsdp": "use_fsdp", "deepspeed-zero2": "use_deepspeed",
                "deepspeed-zero3": "use_deepspeed"}  # fmt: skip
    assert _config(cli, project, "fsdp") == project.dir / "accelerate" / "fsdp.yaml"  # the CLI once; then the library
    for kind, flag in expected.items():
        path = write_accelerate_config(kind, project.dir / "accelerate" / f"{kind}.yaml", 2)
        args, _, _ = _validate_launch_command(launch_command_parser().parse_args(["--config_file", str(path), "x.py"]))
        assert getattr(args, flag) and args.num_processes == 2, kind
        if kind.startswith("deepspeed"):
            assert args.zero_stage == int(kind[-1])
    assert args.zero_stage == 3
    with pytest.raises(Unavailable, match="DeepSpeed") as refused:  # what `ftstudio train` says under them
        check_supported("deepspeed", "transformers")
    assert "--write-accelerate-config fsdp" in refused.value.hint
    bad = cli("train", project.name, "--write-accelerate-config", "zero9")
    assert bad.code == 2 and "ddp, fsdp" in bad.stderr
    assert not (project.dir / "accelerate" / "zero9.yaml").exists()


@pytest.mark.slow
def test_ddp_checkpoints_resume_under_another_number_of_processes(cli, workspace, make_project):
    # 16 steps with a checkpoint every 2: the launch is killed at its first checkpoint, long before it could end.
    project = make_project("llama", **{**SETTINGS, "max_steps": 16})
    ddp = _config(cli, project, "ddp")
    # The reference: one process with the whole global batch (2 processes x 2 examples), never interrupted.
    reference = _adapter(train(project, project.settings().train.model_copy(update={"batch_size": 4})).run_dir)

    # Two processes, killed after a checkpoint, resumed by one process.
    known = {r.id for r in list_runs(project)}
    run_id = _kill_after_first_checkpoint(_launch(ddp, project.name, workspace=workspace), project, known)
    resumed = train(project, project.settings().train, resume=run_id)
    assert resumed.status == "completed" and resumed.steps == 16
    _assert_same(_adapter(resumed.run_dir), reference)

    # One process (batch 4), killed after a checkpoint, resumed by two processes under accelerate.
    env = _env(workspace)
    single = subprocess.Popen([sys.executable, "-m", "ftstudio", "train", project.name, "--batch-size", "4"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              start_new_session=True)  # fmt: skip
    run_id = _kill_after_first_checkpoint(single, project, known={r.id for r in list_runs(project)})
    _wait(_launch(ddp, project.name, "--resume", run_id, workspace=workspace))
    run = next(r for r in list_runs(project) if r.id == run_id)
    assert run.status == "completed" and run.info["steps"] == 16
    _assert_same(_adapter(run.path), reference)


@pytest.mark.slow
def test_fsdp_shards_the_base_model_and_trains_as_one_process_would(cli, workspace, make_project):
    project = make_project("llama", **SETTINGS)
    fsdp = _config(cli, project, "fsdp")
    _wait(_launch(fsdp, project.name, workspace=workspace))
    run = list_runs(project)[-1]
    assert run.status == "completed" and run.info["world_size"] == 2 and run.info["sharding"] == "fsdp"
    ranks = json.loads((run.path / "distributed.json").read_text())["ranks"]
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(project.settings().base_model.model)
    frozen = sum(p.numel() for p in base.parameters())
    held = [r["frozen_parameters_held"] for r in ranks]
    assert all(h < 0.6 * frozen for h in held) and sum(held) >= frozen - 1024  # each holds about half
    assert ranks[0]["adapter_sha256"] == ranks[1]["adapter_sha256"]
    single = train(project, project.settings().train.model_copy(update={"batch_size": 4}))
    _assert_same(_adapter(run.path), _adapter(single.run_dir))
