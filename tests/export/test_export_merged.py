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
