"""Data parallel on two CPU processes (gloo, launched by torchrun, which sets the same variables as
`accelerate launch`): each process trains on different examples, and both end with the adapter a single process
gets from the same global batches."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from ftstudio.train.runner import train
from ftstudio.train.runs import list_runs


@pytest.mark.slow
def test_two_processes_see_different_data_and_end_with_the_same_adapter(workspace, make_project):
    settings = {"learning_rate": 3e-3, "batch_size": 2, "warmup_ratio": 0.0, "max_steps": 3, "dropout": 0.0,
                "compare_answers": 0}  # fmt: skip
    project = make_project("llama", **settings)
    env = {**os.environ, "FTSTUDIO_ROOT": str(workspace), "NO_COLOR": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "ftstudio", "train", project.name, "--json"]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = list_runs(project)[-1]
    assert run.status == "completed" and run.info["world_size"] == 2
    ranks = json.loads((run.path / "distributed.json").read_text())["ranks"]
    seen = [set(r["lines_first_epoch"]) for r in ranks]
    assert len(seen) == 2 and seen[0] and seen[1] and not seen[0] & seen[1]
    assert ranks[0]["adapter_sha256"] == ranks[1]["adapter_sha256"]

    # One process with the whole global batch (2 processes × 2 examples) takes the same steps.
    single = train(project, project.settings().train.model_copy(update={"batch_size": 4}))
    two = load_file(str(run.path / "adapter" / "adapter_model.safetensors"))
    one = load_file(str(single.run_dir / "adapter" / "adapter_model.safetensors"))
    assert two.keys() == one.keys()
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=1e-4, atol=1e-5)
