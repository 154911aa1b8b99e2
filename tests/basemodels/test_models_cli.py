"""`ftstudio models …` through the real entry point: listing, check, use, tiny, and bad input."""

from __future__ import annotations

import json
import sys

from transformers import AutoTokenizer, BertConfig

from ftstudio.basemodels.catalog import load_catalog
from ftstudio.project import Project

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _tree(root):
    return sorted((str(p.relative_to(root)), p.stat().st_mtime_ns) for p in root.rglob("*"))


def test_bare_models_lists_the_catalog_with_verdicts(cli):
    listed = cli("models", "--json")
    assert listed.code == 0, listed.stderr
    data = listed.json()
    assert {m["id"] for m in data["models"]} == {e.id for e in load_catalog()}
    ranks = [("ok", "warn", "error").index(m["verdict"]) for m in data["models"]]
    assert ranks == sorted(ranks)
    assert data["hardware"]["device"] in ("cpu", "cuda")
    human = cli("models", "--seq-len", "512")
    assert human.code == 0 and "Qwen/Qwen2.5-0.5B-Instruct" in human.stdout and "512 tokens" in human.stdout


def test_check_a_kit_model_and_a_4bit_one(cli, tiny_model):
    ok = cli("models", "check", tiny_model("qwen2"), "--seq-len", "256", "--json")
    assert ok.code == 0, ok.stderr
    result = ok.json()
    assert result["verdict"] == "ok" and result["reasons"] == [] and result["gguf_export"] is True
    assert result["chat_template"]["sample"].startswith("<|im_start|>system\nYou are a patient tutor.")
    assert result["estimates"]["lora"]["total"] > result["estimates"]["lora"]["training"] > 0
    four_bit = cli("models", "check", tiny_model("llama", quantized_4bit=True), "--json")
    if four_bit.json()["hardware"]["cuda"]:
        assert four_bit.code == 0
    else:
        assert four_bit.code == 3 and four_bit.json()["verdict"] == "error"
        assert "needs a CUDA GPU" in four_bit.json()["reasons"][0]


def test_cached_hub_id_offline_and_uncached_id(cli, hf_cache, workspace):
    cache = hf_cache("acme/Tiny-Llama-Chat", "llama")
    env = {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    cached = cli("models", "check", "acme/Tiny-Llama-Chat", "--json", env=env)
    assert cached.code == 0, cached.stderr
    assert cached.json()["source"] == "hub-cache" and cached.json()["offline_reason"] == "HF_HUB_OFFLINE is set"
    before = _tree(workspace)
    missing = cli("models", "check", "acme/Not-Cached", "--json", env=env)
    assert missing.code == 3
    assert "not in the local hub cache" in missing.json()["error"] and missing.json()["hint"]
    assert _tree(workspace) == before


def test_bad_inputs_exit_2_and_write_nothing(cli, tmp_path, workspace):
    empty = tmp_path / "empty"
    empty.mkdir()
    bert = tmp_path / "bert"
    BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32).save_pretrained(bert)
    before = _tree(tmp_path)
    no_config = cli("models", "check", empty)
    assert no_config.code == 2 and "has no config.json" in no_config.stderr
    not_causal = cli("models", "check", bert, "--json")
    assert not_causal.code == 2 and "not a causal" in not_causal.json()["reasons"][0]
    assert _tree(tmp_path) == before


def test_use_saves_the_choice_and_refuses_an_error_verdict(cli, workspace, tiny_model):
    project = Project.create("tutor", workspace)
    good = tiny_model("phi3")
    saved = cli("models", "use", "tutor", good, "--json")
    assert saved.code == 0, saved.stderr
    settings = tomllib.loads(project.settings_path.read_text())
    assert settings["base_model"]["model"] == str(good) and settings["base_model"]["trust_remote_code"] is False
    four_bit = tiny_model("llama", quantized_4bit=True)
    refused = cli("models", "use", "tutor", four_bit, "--json")
    if refused.code == 0:  # a CUDA machine: 4-bit is fine there
        return
    assert refused.code == 3 and "--force" in refused.json()["hint"]
    assert project.settings().base_model.model == str(good)
    forced = cli("models", "use", "tutor", four_bit, "--force")
    assert forced.code == 0 and project.settings().base_model.model == str(four_bit)


def test_tiny_writes_a_loadable_model_once(cli, tmp_path):
    folder = tmp_path / "smoke"
    made = cli("models", "tiny", folder, "--arch", "mistral", "--json")
    assert made.code == 0, made.stderr
    assert made.json() == {"folder": str(folder), "arch": "mistral"}
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False) == "<s>[INST] hi [/INST]"
    assert json.loads((folder / "config.json").read_text())["model_type"] == "mistral"
    again = cli("models", "tiny", folder)
    assert again.code == 2 and "already exists" in again.stderr
    unknown = cli("models", "tiny", tmp_path / "other", "--arch", "gpt9")
    assert unknown.code == 2 and not (tmp_path / "other").exists()
    assert not any(p.name.startswith(".other") or p.name.startswith(".smoke") for p in tmp_path.iterdir())
