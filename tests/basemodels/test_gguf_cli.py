"""A GGUF or an Ollama model as the base model through the real `ftstudio` entry point: check, use, refusals.

The real SmolLM2 GGUF is imported once per session (`real_model`); the CLI runs against that cache, so these
commands find it imported (an Ollama blob of the same bytes included: the cache is keyed by content).
"""

from __future__ import annotations

import sys

from gguf_files import ollama_store

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _saved_model(workspace, name):
    return tomllib.loads((workspace / "projects" / name / "project.toml").read_text())["base_model"].get("model")


def test_check_and_use_a_gguf_file_and_an_ollama_model(cli, real_model, workspace, tmp_path):
    real_model("smollm2")
    gguf = real_model.gguf("smollm2")
    store = ollama_store(tmp_path / "ollama", gguf, name="smollm2", tag="135m")
    env = {"FTSTUDIO_CACHE": str(real_model.cache), "OLLAMA_MODELS": str(store)}
    checked = cli("models", "check", gguf, "--seq-len", "512", "--json", env=env)
    assert checked.code == 0, checked.stderr
    result = checked.json()
    assert result["source"] == "gguf" and result["model"] == str(gguf) and result["architecture"] == "llama"
    assert result["folder"] == str(real_model("smollm2")) and result["gguf_export"] is True
    assert result["chat_template"]["sample"].startswith("<|im_start|>system")
    assert cli("init", "p").code == 0
    used = cli("models", "use", "p", "ollama:smollm2:135m", "--json", env=env)
    assert used.code == 0, used.stderr
    assert used.json()["source"] == "ollama" and used.json()["model"] == "ollama:smollm2:135m"
    assert _saved_model(workspace, "p") == "ollama:smollm2:135m"  # the spec, not the cache folder
    as_file = cli("models", "use", "p", gguf, "--json", env=env)
    assert as_file.code == 0 and _saved_model(workspace, "p") == str(gguf)


def test_refusals_exit_2_and_change_nothing(cli, workspace, tmp_path):
    env = {"FTSTUDIO_CACHE": str(tmp_path / "cache"), "OLLAMA_MODELS": str(tmp_path / "no-store")}
    assert cli("init", "p").code == 0
    before = (workspace / "projects" / "p" / "project.toml").read_text()
    missing = cli("models", "use", "p", "ollama:qwen3:0.6b", "--json", env=env)
    assert missing.code == 2
    assert "`ollama pull qwen3:0.6b`" in missing.json()["hint"] and "no-store" in missing.json()["error"]
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"PK\x03\x04 not a gguf")
    refused = cli("models", "check", fake, env=env)
    assert refused.code == 2 and "is not a GGUF file" in refused.stderr
    assert (workspace / "projects" / "p" / "project.toml").read_text() == before
    assert not (tmp_path / "cache" / "gguf").exists() or not any(
        p.name != "identities" for p in (tmp_path / "cache" / "gguf").iterdir()
    )
