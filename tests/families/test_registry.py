"""The registry against published files: the kit's templates are the published ones, byte for byte, and each
published config is accepted and described to llama.cpp as its family says."""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import pytest

from ftstudio.errors import BadInput
from ftstudio.export.gguf import arch
from ftstudio.families import FAMILIES, for_config

DATA = Path(__file__).parent.parent / "data" / "families"
# Kit template file → the test-data folder holding the published copy (mistral's and phi4-mini's are ftstudio's own:
# no published copy could be read from an allowed source).
PUBLISHED = {"llama3.jinja": "llama3", "qwen3.jinja": "qwen3", "smollm3.jinja": "smollm3", "gemma2.jinja": "gemma2",
             "gemma3.jinja": "gemma3", "granite.jinja": "granite", "phi3.jinja": "phi3", "olmo2.jinja": "olmo2"}


@pytest.mark.parametrize("name", list(FAMILIES))
def test_the_kit_template_is_the_published_one(name):
    family = FAMILIES[name]
    folder = PUBLISHED.get(family.tiny.template)
    if family.tiny.template == "qwen2.jinja":  # Qwen 2.5's, as the installed trl package keeps it
        import trl

        published = Path(trl.__file__).parent / "chat_templates" / "qwen2_5.jinja"
    elif folder is None:
        pytest.skip(f"{name}: no published template to compare with (see families/templates/SOURCE.md)")
    else:
        published = DATA / folder / "chat_template.jinja"
    assert family.template_text() == published.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", list(FAMILIES))
def test_each_layout_names_an_architecture_gguf_knows(name):
    layout = FAMILIES[name].layout
    assert gguf.MODEL_ARCH_NAMES[layout.model_arch] == layout.arch


def _metadata(config: dict) -> dict:
    family = arch.family_for(config)
    writer = gguf.GGUFWriter(None, family.layout.arch)
    arch.write_metadata(writer, family, config)
    return {key: value.value for shard in writer.kv_data for key, value in shard.items()}


@pytest.mark.parametrize("folder", sorted(p.name for p in DATA.iterdir() if (p / "config.json").is_file()))
def test_published_configs_are_written_as_their_family(folder):
    config = json.loads((DATA / folder / "config.json").read_text(encoding="utf-8"))
    family = for_config(config)
    assert family is not None and family.name == {"llama3": "llama"}.get(folder, folder)
    meta = _metadata(config)
    name = family.layout.arch
    assert meta[f"{name}.block_count"] == config["num_hidden_layers"]
    assert meta[f"{name}.context_length"] == config["max_position_embeddings"]
    extra = arch.extra_tensors(family, config)
    if folder == "llama3":  # Llama 3.2's llama3 RoPE scaling: one factor per rotary pair, some really scaled
        freqs = extra["rope_freqs.weight"]
        factor = config["rope_scaling"]["factor"]
        assert freqs.shape == (config["head_dim"] // 2,) and freqs.max() == factor and freqs.min() == 1.0
    if folder == "smollm3":
        assert meta["smollm3.rope.freq_base"] == 5000000.0


def test_smollm3_no_rope_layers_other_than_every_fourth_are_refused():
    config = json.loads((DATA / "smollm3" / "config.json").read_text(encoding="utf-8"))
    config["no_rope_layers"] = [1] * config["num_hidden_layers"]
    with pytest.raises(BadInput, match="every fourth layer") as caught:
        arch.family_for(config)
    assert "--format merged" in caught.value.hint


def test_an_unknown_rope_scaling_is_refused():
    config = json.loads((DATA / "llama3" / "config.json").read_text(encoding="utf-8"))
    config["rope_scaling"] = {"rope_type": "yarn", "factor": 4.0}
    with pytest.raises(BadInput, match="RoPE scaling 'yarn'"):
        arch.family_for(config)


def test_a_template_that_cannot_render_is_named_before_anything_is_written(tiny_model, tmp_path):
    import shutil

    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from ftstudio.export.exporter import export
    from ftstudio.project import Project

    base = tmp_path / "base"
    shutil.copytree(tiny_model("qwen3"), base)
    template = FAMILIES["qwen3"].template_text() + "{{ raise_exception('a template bug') }}"
    (base / "chat_template.jinja").write_text(template, encoding="utf-8")
    adapter = tmp_path / "adapter"
    get_peft_model(AutoModelForCausalLM.from_pretrained(base), LoraConfig(r=2)).save_pretrained(adapter)
    project = Project.create("demo", tmp_path / "ws")
    run = project.runs_dir / "run-1"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"id": "run-1", "base_model": str(base), "status": "completed",
                                              "settings": {}}))  # fmt: skip
    shutil.copytree(adapter, run / "adapter")
    with pytest.raises(BadInput, match=r"chat_template.jinja: the chat template cannot render") as caught:
        export(project, fmt="gguf", quant="f16", verify=False)
    assert "a template bug" in caught.value.message and "fix the template" in caught.value.hint
    assert not project.exports_dir.exists() or not any(project.exports_dir.iterdir())


def test_an_unknown_split_pattern_is_refused_with_the_pattern_quoted(tiny_model, tmp_path):
    import shutil

    from ftstudio.export.gguf.tokenizer import read_vocab

    folder = tmp_path / "m"
    shutil.copytree(tiny_model("qwen3"), folder)
    spec = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    spec["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = r"\p{L}+|\p{N}{1,2}|\s+"
    (folder / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    with pytest.raises(BadInput) as caught:
        read_vocab(folder, 2048)
    assert r"'\\p{L}+|\\p{N}{1,2}|\\s+'" in caught.value.message and "qwen2" in caught.value.message
    assert "--format merged" in caught.value.hint
