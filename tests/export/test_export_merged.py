"""Merged export: the adapter folded into the base, tensor by tensor, reloadable offline with the same logits."""

from __future__ import annotations

import json

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from ftstudio.export.merged import export_merged

TEXT = "Question: How many sides does a hexagon have? Answer: six."


def _logits(model, tokenizer):
    ids = tokenizer(TEXT, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return model(ids).logits[0]


@pytest.mark.parametrize("arch", ["llama", "qwen2", "phi3", "mistral"])
def test_merged_model_reloads_offline_with_base_plus_adapter_logits(cli, trained_project, arch, monkeypatch):
    project = trained_project(arch)
    result = cli("export", "demo", "--format", "merged", "--json")
    assert result.code == 0, result.stderr
    files = {f["path"].rsplit("/", 1)[1]: f["size"] for f in result.json()["files"]}
    assert {"model.safetensors", "config.json", "tokenizer.json", "generation_config.json"} <= set(files)
    folder = project.exports_dir / "demo-run-1-merged"

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    merged = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    run = json.loads((project.runs_dir / "run-1" / "run.json").read_text())
    base = AutoModelForCausalLM.from_pretrained(run["base_model"])
    plain = _logits(base, tokenizer)
    with_adapter = _logits(PeftModel.from_pretrained(base, project.runs_dir / "run-1" / "adapter"), tokenizer)
    got = _logits(merged, tokenizer)
    assert (with_adapter - plain).abs().max() > 0.05  # the adapter really changes the model
    torch.testing.assert_close(got, with_adapter, atol=1e-4, rtol=1e-4)
    assert merged.dtype == torch.float32  # an f32 base stays f32
    assert tokenizer.chat_template == AutoTokenizer.from_pretrained(run["base_model"]).chat_template


def test_merge_keeps_bf16_and_shards_with_an_index(tiny_model, adapter_for, tmp_path):
    base, adapter = adapter_for("llama")
    bf16 = tiny_model("llama", dtype="bfloat16")
    files = export_merged(bf16, adapter, tmp_path / "out", max_shard_bytes=60_000)
    shards = [f for f in files if f.suffix == ".safetensors"]
    assert len(shards) > 3
    index = json.loads((tmp_path / "out" / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"].values()) == {s.name for s in shards}
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    assert merged.dtype == torch.bfloat16
    reference = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(bf16), adapter).merge_and_unload()
    for name, tensor in merged.state_dict().items():
        torch.testing.assert_close(tensor.float(), reference.state_dict()[name].float(), atol=2e-2, rtol=2e-2)
    assert not list(tmp_path.glob(".*tmp"))


# Linux carries peak RSS across fork+exec, so the measured command is forked from a small fresh launcher.
_LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.executable, [sys.executable, "-c", sys.argv[1], *sys.argv[2:]])
_, status, usage = os.wait4(pid, 0)
print(usage.ru_maxrss * 1024, os.waitstatus_to_exitcode(status))
"""


def _peak_rss(code: str, *args: str) -> int:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", _LAUNCHER, code, *args], capture_output=True, text=True, timeout=300)
    rss, status = proc.stdout.split()[-2:]
    assert status == "0", proc.stderr
    return int(rss)


def test_merge_memory_stays_far_below_the_model_size(tiny_model, tmp_path):
    """Tensor by tensor: the merge's peak RSS above the bare interpreter is a fraction of the model, not 2×."""
    import torch
    from peft import LoraConfig, get_peft_model

    base = tiny_model("llama", hidden_size=512, layers=6, heads=8, kv_heads=4, intermediate_size=1536)
    size = (base / "model.safetensors").stat().st_size
    assert size > 60 * 2**20
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base), LoraConfig(r=8, target_modules="all-linear"))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.02)
    model.save_pretrained(tmp_path / "adapter")
    bare = _peak_rss("import ftstudio.export.merged")
    merge = "import sys; from pathlib import Path; from ftstudio.export.merged import export_merged; " \
            "export_merged(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))"  # fmt: skip
    merged = _peak_rss(merge, str(base), str(tmp_path / "adapter"), str(tmp_path / "out"))
    assert (tmp_path / "out" / "model.safetensors").stat().st_size == size
    assert merged - bare < 0.5 * size, (merged - bare) / size
