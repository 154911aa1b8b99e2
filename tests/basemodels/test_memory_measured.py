"""The memory formula against the measured peak of real LoRA steps on a 26 M-parameter kit Llama (CPU, fp32)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ftstudio.basemodels.memory import ModelShape, estimate_memory
from ftstudio.basemodels.tiny import build_tiny_model

TOLERANCE = 0.25  # the estimate's training figure is within ±25 % of the measured peak
MEASURE = Path(__file__).with_name("measure_lora_peak.py")


@pytest.mark.slow
def test_estimate_matches_measured_lora_peak(tmp_path):
    folder = build_tiny_model(tmp_path / "llama26m", "llama", hidden_size=512, layers=8, heads=8, kv_heads=4,
                              intermediate_size=1536, vocab_size=4096)  # fmt: skip
    seq_len, batch, rank = 256, 2, 16
    # A fixed mmap threshold hands every large tensor straight back to the OS when freed, so the peak resident size
    # counts live tensors, not memory glibc keeps for reuse (which otherwise varies run to run by hundreds of MB).
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    proc = subprocess.run(
        [sys.executable, str(MEASURE), str(folder), str(seq_len), str(batch), str(rank), "1"],
        capture_output=True, text=True, env=env, timeout=500, check=True,
    )  # fmt: skip
    run = json.loads(proc.stdout.strip().splitlines()[-1])
    measured = run["peak"] - run["baseline"]

    shape = ModelShape.from_config(json.loads((folder / "config.json").read_text()))
    estimate = estimate_memory(shape, method="lora", device="cpu", seq_len=seq_len, batch=batch, lora_rank=rank)
    assert run["total"] == estimate.parameters + estimate.adapter_parameters
    assert run["trainable"] == estimate.adapter_parameters
    assert run["losses"][-1] < run["losses"][0]  # the steps really trained
    assert measured > 150e6  # well above measurement noise
    print(f"estimate {estimate.training / 1e6:.0f} MB, measured {measured / 1e6:.0f} MB")
    assert abs(estimate.training - measured) / measured < TOLERANCE, (estimate.to_dict(), measured)
