"""Resolving hub ids from a hub cache laid out as huggingface_hub writes it; offline answers come fast."""

from __future__ import annotations

import time

import pytest

from ftstudio.basemodels.checks import check_model
from ftstudio.basemodels.resolve import resolve_model
from ftstudio.errors import BadInput, Unavailable


def test_cached_hub_id_resolves_offline(hf_cache, monkeypatch, cpu_machine):
    cache = hf_cache("acme/Tiny-Chat", "qwen2")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    resolved = resolve_model("acme/Tiny-Chat", cache_dir=cache)
    assert resolved.source == "hub-cache" and resolved.hub_id == "acme/Tiny-Chat"
    assert resolved.offline_reason == "HF_HUB_OFFLINE is set"
    assert resolved.config["model_type"] == "qwen2"
    assert {"config.json", "tokenizer.json", "tokenizer_config.json"} <= set(resolved.files)
    assert resolved.folder.parent.name == "snapshots"
    result = check_model("acme/Tiny-Chat", cache_dir=str(cache), hardware=cpu_machine)
    assert result.verdict == "ok" and result.info["chat_template"]["renders"]


def test_unreachable_hub_falls_back_to_the_cache_quickly(hf_cache, monkeypatch):
    cache = hf_cache("acme/Tiny-Chat", "llama")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    started = time.monotonic()
    resolved = resolve_model("acme/Tiny-Chat", cache_dir=cache)
    assert time.monotonic() - started < 10
    assert resolved.source == "hub-cache" and "cannot reach 127.0.0.1:9" in resolved.offline_reason
    with pytest.raises(Unavailable, match=r"acme/Absent is not in the local hub cache .* cannot reach") as caught:
        resolve_model("acme/Absent", cache_dir=cache)
    assert caught.value.exit_code == 3 and time.monotonic() - started < 15


def test_malformed_id_is_bad_input(tmp_path):
    with pytest.raises(BadInput, match="neither a folder nor a valid hub id"):
        resolve_model("acme/bad name!", cache_dir=tmp_path, offline=True)
