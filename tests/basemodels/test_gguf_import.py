"""A GGUF file or an Ollama model as the base model: the real installed GGUFs imported, read back by plain
transformers and compared with llama.cpp; an Ollama store laid out as Ollama lays it; every refusal, with nothing
cached. The full-size imports happen once per session (the `real_model` fixture); the rest use a two-layer copy of
the real SmolLM2 GGUF (its real tokenizer and tensors), which imports in seconds.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from gguf_files import ollama_store, rewrite_gguf

from ftstudio.basemodels.gguf_import import (
    IMPORT_FORMAT,
    RECORD_FILE,
    cached_folder,
    import_gguf,
    is_gguf_spec,
    loadable,
)
from ftstudio.basemodels.resolve import resolve_model
from ftstudio.errors import BadInput, Cancelled, FtError, NotFound
from ftstudio.export.gguf.quantize import llama_cpp_available

needs_llama = pytest.mark.skipif(not llama_cpp_available(), reason="needs llama-cpp-python")

PROMPT = "The capital of France is"
SAME_TOKENS = 4  # llama.cpp multiplies Q4 weights with Q8-quantized activations: later tokens may drift


@pytest.fixture(scope="module")
def small_gguf(real_model, tmp_path_factory) -> Path:
    """The real SmolLM2 GGUF cut to its first two layers."""
    return rewrite_gguf(real_model.gguf("smollm2"), tmp_path_factory.mktemp("small") / "smol-2l.gguf", layers=2)


@pytest.fixture(scope="module")
def bare_gguf(small_gguf, tmp_path_factory) -> Path:
    """The two-layer copy without its tokenizer: what the refusals start from (they refuse before it matters)."""
    return rewrite_gguf(small_gguf, tmp_path_factory.mktemp("bare") / "smol-bare.gguf", tokenizer=False)


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty ftstudio cache for this test."""
    root = tmp_path / "cache"
    monkeypatch.setenv("FTSTUDIO_CACHE", str(root))
    return root


def _greedy_llama_cpp(gguf: Path, n: int) -> tuple[list[int], list[int]]:
    from llama_cpp import Llama

    llm = Llama(model_path=str(gguf), n_ctx=64, n_threads=2, verbose=False)
    try:
        prompt = llm.tokenize(PROMPT.encode(), add_bos=True, special=False)
        out: list[int] = []
        for token in llm.generate(prompt, top_k=1, temp=0.0, repeat_penalty=1.0):
            out.append(token)
            if len(out) == n:
                break
        return prompt, out
    finally:
        llm.close()


def _greedy_transformers(folder: Path, n: int) -> tuple[list[int], list[int]]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    ids = tokenizer(PROMPT, return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=n, do_sample=False)
    return ids[0].tolist(), out[0, ids.shape[1] :].tolist()


@pytest.mark.slow
@pytest.mark.llama
@needs_llama
@pytest.mark.parametrize("name", ["smollm2", "gemma3"])
def test_imported_folder_answers_like_the_gguf_in_llama_cpp(real_model, name):
    folder = real_model(name)
    record = json.loads((folder / RECORD_FILE).read_text())
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config
    assert config["model_type"] == {"smollm2": "llama", "gemma3": "gemma3_text"}[name]
    assert record["sha256"] == folder.name and record["dtype"] == "float32"
    assert (folder / "tokenizer.json").is_file() and (folder / "model.safetensors").is_file()
    template = (folder / "chat_template.jinja").read_text()
    if name == "smollm2":  # the instruct model's template, from the GGUF's tokenizer.chat_template
        assert "<|im_start|>" in template and record["chat_template"] == "gguf"
    else:  # the base model's GGUF has none: Gemma 3's published template, whose turn tokens its vocabulary has
        assert "<start_of_turn>" in template and record["chat_template"] == "the gemma3 family's published template"
    hf_prompt, hf_out = _greedy_transformers(folder, SAME_TOKENS)
    cpp_prompt, cpp_out = _greedy_llama_cpp(real_model.gguf(name), SAME_TOKENS)
    assert hf_prompt == cpp_prompt
    assert hf_out == cpp_out


def test_smollm2_answers_paris(real_model):
    from transformers import AutoTokenizer

    folder = real_model("smollm2")
    _, out = _greedy_transformers(folder, 2)
    assert AutoTokenizer.from_pretrained(folder).decode(out).strip().startswith("Paris")


def test_reimport_is_a_cache_hit_without_hashing_again(real_model, monkeypatch):
    monkeypatch.setenv("FTSTUDIO_CACHE", str(real_model.cache))
    events = []
    again = import_gguf(str(real_model.gguf("smollm2")), progress=events.append)
    assert again.cached and again.folder == real_model("smollm2")
    assert [e.stage for e in events] == ["gguf-done"]  # the file's identity matched: no hashing, no dequantizing


def test_an_ollama_store_imports_without_a_server(small_gguf, cache, tmp_path, monkeypatch):
    store = ollama_store(tmp_path / "ollama", small_gguf, name="smol", tag="2l")
    monkeypatch.setenv("OLLAMA_MODELS", str(store))
    gone = subprocess.Popen(["true"])
    gone.wait()
    killed = cache / "gguf" / f".partial-{'0' * 16}-{gone.pid}-x"  # what an import killed mid-way leaves
    killed.mkdir(parents=True)
    events = []
    resolved = resolve_model("ollama:smol:2l", progress=events.append)
    assert resolved.source == "ollama" and resolved.label == "ollama:smol:2l"
    assert resolved.folder.parent == cache / "gguf"
    assert resolved.config["num_hidden_layers"] == 2 and "chat_template.jinja" in resolved.files
    stages = [e.stage for e in events]
    assert "gguf-hash" not in stages  # the blob is named by its digest
    assert {"gguf-dequantize", "gguf-write", "gguf-done"} <= set(stages)
    tensors = [e for e in events if e.stage == "gguf-dequantize"]
    assert tensors[-1].done == tensors[-1].total == 20  # per tensor, from transformers' own loop
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(resolved.folder)
    assert model.config.num_hidden_layers == 2
    # The same bytes as a file: hashed once, then the same cached folder.
    events.clear()
    same = import_gguf(str(small_gguf), progress=events.append)
    assert same.cached and same.folder == resolved.folder
    assert [e.stage for e in events if e.stage != "gguf-hash"] == ["gguf-done"]
    assert loadable(str(small_gguf)) == str(resolved.folder)
    assert not killed.exists()


def test_full_ollama_names_and_tags(small_gguf, tmp_path, monkeypatch, cache):
    store = ollama_store(tmp_path / "ollama", small_gguf, name="smol", tag="latest", ns="someone")
    monkeypatch.setenv("OLLAMA_MODELS", str(store))
    from ftstudio.basemodels.gguf_import import installed_ollama_models, locate

    assert locate("ollama:someone/smol").path == locate("ollama:registry.ollama.ai/someone/smol:latest").path
    assert installed_ollama_models(store) == ["someone/smol:latest"]


def test_a_missing_ollama_model_names_the_store_and_the_pull(small_gguf, tmp_path, monkeypatch, cache):
    store = ollama_store(tmp_path / "ollama", small_gguf, name="smol")
    monkeypatch.setenv("OLLAMA_MODELS", str(store))
    with pytest.raises(NotFound) as caught:
        import_gguf("ollama:qwen3:0.6b")
    assert str(store) in caught.value.message and "qwen3:0.6b" in caught.value.message
    assert "`ollama pull qwen3:0.6b`" in caught.value.hint and "smol:latest" in caught.value.hint
    with pytest.raises(BadInput, match="not an Ollama model name"):
        import_gguf("ollama:../../etc/passwd")
    assert not cache.exists()


def _refused(spec: str, cache: Path, error: type[FtError] = BadInput) -> FtError:
    with pytest.raises(error) as caught:
        import_gguf(spec)
    gguf_dir = cache / "gguf"
    assert not gguf_dir.exists() or [p.name for p in gguf_dir.iterdir()] == ["identities"]  # nothing half-cached
    assert caught.value.exit_code == 2 and caught.value.hint
    return caught.value


def test_refuses_what_is_not_a_gguf(tmp_path, cache):
    fake = tmp_path / "notes.gguf"
    fake.write_text("just text")
    assert "is not a GGUF file" in _refused(str(fake), cache).message
    assert "no GGUF file" in _refused(str(tmp_path / "missing.gguf"), cache, NotFound).message


def test_refuses_a_truncated_gguf(bare_gguf, tmp_path, cache):
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(bare_gguf.read_bytes()[: bare_gguf.stat().st_size // 2])
    assert "truncated or damaged" in _refused(str(cut), cache).message
    header_only = tmp_path / "header.gguf"
    header_only.write_bytes(bare_gguf.read_bytes()[:64])
    assert "truncated or damaged" in _refused(str(header_only), cache).message


def test_refuses_a_quantization_type_it_cannot_dequantize(bare_gguf, tmp_path, cache):
    patched = rewrite_gguf(bare_gguf, tmp_path / "q8_1.gguf", retype={"blk.0.attn_q.weight": "Q8_1"})
    error = _refused(str(patched), cache)
    assert "Q8_1" in error.message and "Q8_0" in error.hint


def test_refuses_an_unknown_quantization_type(bare_gguf, tmp_path, cache):
    from gguf import GGUFReader

    patched = tmp_path / "unknown.gguf"
    shutil.copy(bare_gguf, patched)
    reader = GGUFReader(patched, "r+")  # the gguf package's in-place editing, as its gguf_set_metadata does
    reader.tensors[0].field.parts[4][0] = 250  # the tensor's type id
    reader.data.flush()
    del reader
    error = _refused(str(patched), cache)
    assert "does not know" in error.message and "upgrade" in error.hint


def test_refuses_an_architecture_transformers_cannot_dequantize(bare_gguf, tmp_path, cache):
    patched = rewrite_gguf(bare_gguf, tmp_path / "granite.gguf", architecture="granite")
    error = _refused(str(patched), cache)
    assert "'granite'" in error.message and "llama" in error.message
    assert "Hugging Face repository" in error.hint


def test_a_cancelled_import_caches_nothing(small_gguf, cache):
    def stop(event):
        if event.stage == "gguf-dequantize":  # the work folder exists by now
            raise Cancelled("stopped")

    with pytest.raises(Cancelled):
        import_gguf(str(small_gguf), progress=stop)
    assert sorted(p.name for p in (cache / "gguf").iterdir()) == ["identities"]


def test_a_folder_from_an_older_import_is_built_again(small_gguf, cache):
    first = import_gguf(str(small_gguf))
    record = json.loads((first.folder / RECORD_FILE).read_text())
    assert record["format"] == IMPORT_FORMAT
    del record["format"]  # as the first imports wrote it
    (first.folder / RECORD_FILE).write_text(json.dumps(record))
    (first.folder / "chat_template.jinja").write_text("{{ 'the old, broken template' }}")
    assert cached_folder(str(small_gguf)) is None  # stale: not offered as the cached folder

    events = []
    again = import_gguf(str(small_gguf), progress=events.append)
    assert not again.cached and again.folder == first.folder
    assert "gguf-dequantize" in [e.stage for e in events]
    assert "old, broken" not in (again.folder / "chat_template.jinja").read_text()
    assert json.loads((again.folder / RECORD_FILE).read_text())["format"] == IMPORT_FORMAT
    assert sorted(p.name for p in (cache / "gguf").iterdir()) == sorted(["identities", first.folder.name])
    assert import_gguf(str(small_gguf)).cached


def test_which_specs_are_gguf(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    assert is_gguf_spec("ollama:smollm2:135m") and is_gguf_spec("~/models/x.GGUF")
    assert not is_gguf_spec(str(folder)) and not is_gguf_spec("Qwen/Qwen2.5-0.5B-Instruct")
