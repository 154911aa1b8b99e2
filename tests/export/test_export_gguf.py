"""GGUF export read back by llama.cpp itself (llama-cpp-python): same token ids and logits as transformers."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from ftstudio.export.exporter import export
from ftstudio.export.gguf.quantize import llama_cpp_available
from ftstudio.export.merged import export_merged
from ftstudio.families import FAMILIES

pytestmark = [pytest.mark.llama, pytest.mark.skipif(not llama_cpp_available(), reason="needs llama-cpp-python")]

# Long enough (~400 tokens) that top-1 agreement over positions is a stable statistic.
LONG = (
    "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen; plants don't eat soil! "
    "In 1969, two astronauts walked on the Moon. Newton's second law says F = m * a: a 2 kg ball pushed with 10 N "
    "accelerates at 5 m/s². Gradient descent lowers the loss step by step (e.g. 2e-4). Une fraction est une partie "
    "d'un tout; Größe, façade. Числа и дроби. 数学は楽しい。 def area(w, h):\n    return w * h  # rectangles\n"
) * 3
CHAT = [
    {"role": "user", "content": "What is 25 × 4? Don't guess: 12345, naïve café 🙂"},
    {"role": "assistant", "content": "It is 100.\n\n- first\n- second\n\n" + LONG},
    {"role": "user", "content": "And 3/4 + 1/2?"},
]


@pytest.fixture(scope="module")
def reference(adapter_for, tmp_path_factory):
    """Per architecture: the merged model in transformers and its logits on a chat-templated prompt.

    `weights="f16"|"bf16"` rounds the 2-D weights to that type first, as the GGUF stores them (llama.cpp computes
    in f32 either way), so the comparison measures the file, not the rounding. Other keywords go to the tiny kit.
    """
    cache = {}

    def get(arch, weights="f32", **options):
        key = (arch, weights, tuple(sorted(options.items())))
        if key not in cache:
            base, adapter = adapter_for(arch, **options)
            folder = export_merged(base, adapter, tmp_path_factory.mktemp("merged") / arch)[0].parent
            tokenizer = AutoTokenizer.from_pretrained(folder)
            model = AutoModelForCausalLM.from_pretrained(folder)
            rounding = {"f16": torch.float16, "bf16": torch.bfloat16}.get(weights)
            if rounding is not None:
                with torch.no_grad():
                    for param in model.parameters():
                        if param.dim() == 2:
                            param.copy_(param.to(rounding).float())
            text = tokenizer.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True)
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            with torch.no_grad():
                logits = model(torch.tensor([ids])).logits[0].numpy()
            cache[key] = (text, ids, logits)
        return cache[key]

    return get


def _llama(path, **kw):
    import llama_cpp

    # One thread: ggml hands out matmul chunks dynamically, so with several threads the summation order (and a
    # near-tie's winner) can change from run to run on a busy machine.
    return llama_cpp.Llama(str(path), n_ctx=512, logits_all=True, verbose=False, n_threads=1, **kw)


@pytest.mark.parametrize("quant", ["f32", "f16", "bf16", "q8_0"])
@pytest.mark.parametrize("arch", ["llama", "qwen2", "phi3", "mistral"])
def test_llama_cpp_reads_the_gguf_like_transformers(trained_project, reference, arch, quant):
    project = trained_project(arch)
    result = export(project, fmt="gguf", quant=quant, verify=False)
    path = project.exports_dir / f"demo-run-1-{quant}.gguf"
    assert [f["path"] for f in result.files] == [str(path), str(path.with_suffix(".Modelfile"))]
    text, ids, ref = reference(arch, quant if quant in ("f16", "bf16") else "f32")

    llm = _llama(path)
    try:
        assert llm.tokenize(text.encode(), add_bos=False, special=True) == ids
        llm.eval(ids)
        got = np.array(llm.scores[: len(ids)])
    finally:
        llm.close()
    span = ref.max(axis=-1) - ref.min(axis=-1)
    same_top1 = got.argmax(-1) == ref.argmax(-1)
    if quant == "f32":
        assert (np.abs(got - ref).max(-1) < 1e-3 * span).all()
    elif quant == "f16":
        # llama.cpp rounds activations to f16 too (about 5e-4 of the range): the same top-1 wherever transformers'
        # best two are further apart than that; at a closer near-tie, llama.cpp's pick is within it of the best.
        top2 = np.sort(ref, axis=-1)[:, -2:]
        decisive = (top2[:, 1] - top2[:, 0]) > 1e-3 * span
        chosen = ref[np.arange(len(ids)), got.argmax(-1)]
        assert same_top1[decisive].all() and ((ref.max(-1) - chosen) <= 1e-3 * span).all()
    elif quant == "bf16":
        # llama.cpp multiplies bf16 weights with activations rounded to bf16 too (8-bit mantissa), so where
        # transformers' best two logits lie within a few thousandths of the range the order may flip; elsewhere not.
        chosen = ref[np.arange(len(ids)), got.argmax(-1)]
        assert ((ref.max(-1) - chosen) <= 5e-3 * span).all() and same_top1.mean() >= 0.98
    else:
        # Q8_0 moves logits by about 1% of the range (llama.cpp also rounds activations to 8 bits), and a tiny
        # random model has many near-ties: measured here 95-97% agreement overall (94.8% for Qwen2), 99%+ where
        # transformers' best two logits are more than 0.5% of the range apart.
        top2 = np.sort(ref, axis=-1)[:, -2:]
        decisive = (top2[:, 1] - top2[:, 0]) > 5e-3 * span
        assert same_top1[decisive].mean() >= 0.98 and same_top1.mean() >= 0.93


@pytest.mark.parametrize("arch", ["llama", "qwen2", "phi3", "mistral"])
def test_gguf_layout_and_metadata(trained_project, arch):
    project = trained_project(arch)
    export(project, fmt="gguf", quant="q8_0", verify=False)
    reader = gguf.GGUFReader(project.exports_dir / "demo-run-1-q8_0.gguf")
    fields = {name: f for name, f in reader.fields.items()}

    def value(key):
        return fields[key].contents()

    tensors = {t.name: t for t in reader.tensors}
    gguf_arch = {"mistral": "llama"}.get(arch, arch)
    assert value("general.architecture") == gguf_arch
    assert value(f"{gguf_arch}.block_count") == 2 and value(f"{gguf_arch}.context_length") == 2048
    assert value(f"{gguf_arch}.attention.head_count") == 4 and value(f"{gguf_arch}.attention.head_count_kv") == 2
    assert value("general.file_type") == gguf.LlamaFileType.MOSTLY_Q8_0
    assert ("output.weight" in tensors) == (arch in ("phi3", "mistral"))  # Llama 3.2's and Qwen2's kit models tie
    assert ("blk.0.attn_qkv.weight" in tensors) == (arch == "phi3")
    assert ("blk.0.attn_q.bias" in tensors) == (arch == "qwen2")
    assert tensors["token_embd.weight"].tensor_type == gguf.GGMLQuantizationType.Q8_0
    assert tensors["blk.0.attn_norm.weight"].tensor_type == gguf.GGMLQuantizationType.F32
    tokens = value("tokenizer.ggml.tokens")
    model = value("tokenizer.ggml.model")
    eot = tokens[value("tokenizer.ggml.eot_token_id")]
    assert eot == {"llama": "<|eot_id|>", "qwen2": "<|im_end|>", "phi3": "<|end|>", "mistral": "</s>"}[arch]
    if arch in ("llama", "qwen2"):
        assert model == "gpt2" and value("tokenizer.ggml.pre") == {"llama": "llama-bpe", "qwen2": "qwen2"}[arch]
        assert len(value("tokenizer.ggml.merges")) > 100
    else:
        assert model == "llama" and len(value("tokenizer.ggml.scores")) == len(tokens)
        types = value("tokenizer.ggml.token_type")
        assert tokens[3] == "<0x00>" and types[3] == gguf.TokenType.BYTE
        assert types[tokens.index("<s>")] == gguf.TokenType.CONTROL
    assert value("tokenizer.ggml.add_bos_token") == (arch in ("llama", "mistral"))
    assert "tokenizer.chat_template" in fields


@pytest.mark.parametrize("quant", ["q4_k_m", "q5_k_m", "q6_k", "q4_0"])
def test_k_quants_and_q4_0_load_and_generate(trained_project, quant):
    project = trained_project("llama", hidden_size=256, heads=4, kv_heads=2)
    export(project, fmt="gguf", quant=quant, verify=False)
    path = project.exports_dir / f"demo-run-1-{quant}.gguf"
    reader = gguf.GGUFReader(path)
    types = {t.name: t.tensor_type for t in reader.tensors}
    file_type = {"q4_k_m": 15, "q5_k_m": 17, "q6_k": 18, "q4_0": 2}[quant]
    assert reader.fields["general.file_type"].contents() == file_type
    main = {"q4_k_m": "Q4_K", "q5_k_m": "Q5_K", "q6_k": "Q6_K", "q4_0": "Q4_0"}[quant]
    # Rows 256 wide fill whole K-quant blocks, so the mixture's main type is really used.
    assert types["blk.0.attn_q.weight"].name == main
    llm = _llama(path)
    try:
        out = llm("<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>", max_tokens=8, temperature=0)
        assert out["usage"]["completion_tokens"] >= 1
    finally:
        llm.close()


def test_k_quant_of_a_model_narrower_than_a_block_falls_back(trained_project):
    """Hidden size 64: no row fills a 256-wide K block, so llama.cpp picks block-32 types; the file still works."""
    project = trained_project("llama")
    export(project, fmt="gguf", quant="q4_k_m", verify=False)
    path = project.exports_dir / "demo-run-1-q4_k_m.gguf"
    types = {t.tensor_type.name for t in gguf.GGUFReader(path).tensors}
    assert not types & {"Q4_K", "Q5_K", "Q6_K"} and types & {"Q5_0", "Q5_1", "Q8_0", "Q4_0", "Q4_1", "IQ4_NL"}
    llm = _llama(path)
    try:
        assert llm("Hi", max_tokens=4, temperature=0)["usage"]["completion_tokens"] >= 1
    finally:
        llm.close()


def test_llama_3_1_rope_scaling_gets_its_rope_freqs(tiny_model, tmp_path):
    """Llama 3.1+ configs scale RoPE per frequency; the GGUF carries those factors as `rope_freqs`."""
    import json
    import shutil

    from ftstudio.export.gguf.writer import export_gguf

    folder = tmp_path / "llama31"
    shutil.copytree(tiny_model("llama"), folder)
    config = json.loads((folder / "config.json").read_text())
    config["rope_parameters"] = {"rope_theta": 500000.0, "rope_type": "llama3", "factor": 32.0,
                                 "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                 "original_max_position_embeddings": 1024}  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    ids = tokenizer(LONG, add_special_tokens=False)["input_ids"][:256]
    with torch.no_grad():
        ref = AutoModelForCausalLM.from_pretrained(folder)(torch.tensor([ids])).logits[0].numpy()
    path = export_gguf(folder, tmp_path / "m.gguf", "f32")
    assert "rope_freqs.weight" in {t.name for t in gguf.GGUFReader(path).tensors}
    llm = _llama(path)
    try:
        llm.eval(ids)
        got = np.array(llm.scores[: len(ids)])
    finally:
        llm.close()
    span = ref.max(-1) - ref.min(-1)
    assert (np.abs(got - ref).max(-1) < 1e-3 * span).all()


def test_every_model_type_the_checks_promise_has_a_family_that_writes_it():
    from ftstudio.families import for_config, gguf_model_types

    for model_type in gguf_model_types():
        assert model_type in for_config({"model_type": model_type}).model_types


# The families whose kit model is untied: tests/families exports every other family tied already.
UNTIED_KITS = [name for name, f in FAMILIES.items() if not f.tiny.config.get("tie_word_embeddings")]


@pytest.mark.parametrize("arch", UNTIED_KITS)
def test_a_tied_model_is_written_as_its_llama_cpp_loader_reads_it(trained_project, reference, arch):
    project = trained_project(arch, tied=True)
    result = export(project, fmt="gguf", quant="f32", verify=True)
    assert result.verification["passed"]
    path = Path(result.files[0]["path"])
    tensors = {t.name: np.asarray(t.data) for t in gguf.GGUFReader(path).tensors}
    if FAMILIES[arch].layout.lm_head == "required":  # OLMo 2's loader has no fallback to the embedding
        assert np.array_equal(tensors["output.weight"], tensors["token_embd.weight"])
    else:
        assert "output.weight" not in tensors
    text, ids, ref = reference(arch, tied=True)
    llm = _llama(path)
    try:
        assert llm.tokenize(text.encode(), add_bos=False, special=True) == ids
        llm.eval(ids)
        got = np.array(llm.scores[: len(ids)])
    finally:
        llm.close()
    span = ref.max(axis=-1) - ref.min(axis=-1)
    assert (np.abs(got - ref).max(-1) < 1e-3 * span).all()
