"""check_model on real folders: every kit model, the 4-bit rule, remote code, non-causal and broken configs."""

from __future__ import annotations

import json
import shutil

import pytest
from transformers import AutoTokenizer, BertConfig, StableLmConfig

from ftstudio.basemodels.chat_template import SAMPLE_CONVERSATION
from ftstudio.basemodels.checks import check_model
from ftstudio.basemodels.tiny import ARCHITECTURES
from ftstudio.errors import BadInput, NotFound
from ftstudio.families import FAMILIES


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_kit_model_passes_and_its_template_renders_as_the_tokenizer_does(tiny_model, arch, cpu_machine):
    folder = tiny_model(arch)
    result = check_model(str(folder), seq_len=512, hardware=cpu_machine)
    assert result.verdict == "ok", result.reasons
    assert result.exit_code == 0 and result.info["source"] == "folder"
    model_type = FAMILIES[arch].tiny.config["model_type"]
    assert result.info["architecture"] == model_type and result.info["gguf_export"] is True
    template = result.info["chat_template"]
    assert template["found"] and template["renders"]
    # The check's rendering is the tokenizer's own (Mistral's and Gemma 2's templates refuse a system turn, so it
    # is dropped there).
    messages = list(SAMPLE_CONVERSATION) if template["system_role"] else list(SAMPLE_CONVERSATION[1:])
    assert template["sample"] == AutoTokenizer.from_pretrained(folder).apply_chat_template(messages, tokenize=False)
    assert template["system_role"] == FAMILIES[arch].chat.system_role
    lora = result.estimates["lora"]
    assert lora.device == "cpu" and 0 < lora.training < lora.total


def test_parameter_count_matches_the_loaded_model_exactly(tiny_model, cpu_machine):
    from transformers import AutoModelForCausalLM

    for arch in ARCHITECTURES:
        folder = tiny_model(arch)
        model = AutoModelForCausalLM.from_pretrained(folder)
        result = check_model(str(folder), hardware=cpu_machine)
        assert result.info["parameters"] == sum(p.numel() for p in model.parameters()), arch


def test_pre_quantized_4bit_needs_cuda(tiny_model, cpu_machine, cuda_machine):
    folder = tiny_model("llama", quantized_4bit=True)
    on_cpu = check_model(str(folder), hardware=cpu_machine)
    assert on_cpu.verdict == "error" and on_cpu.exit_code == 3
    assert "needs a CUDA GPU" in on_cpu.reasons[0]
    assert any("16-bit" in s and "--method lora" in s for s in on_cpu.suggestions)
    on_gpu = check_model(str(folder), hardware=cuda_machine)
    assert on_gpu.verdict == "ok" and on_gpu.info["effective_method"] == "qlora"


def test_qlora_on_cpu_is_refused_with_lora_suggested(tiny_model, cpu_machine):
    result = check_model(str(tiny_model("qwen2")), method="qlora", hardware=cpu_machine)
    assert result.verdict == "error" and result.exit_code == 3
    assert "use --method lora on this machine" in result.suggestions


def test_memory_beyond_the_machine_is_an_error(tiny_model, cpu_machine):
    result = check_model(str(tiny_model("llama")), seq_len=2048, batch=4096, hardware=cpu_machine)
    assert result.verdict == "error"
    assert any("needs about" in r and "24.0 GiB RAM" in r for r in result.reasons)
    assert any("--batch (now 4096)" in s for s in result.suggestions)


def test_longer_than_the_context_warns(tiny_model, cpu_machine):
    result = check_model(str(tiny_model("phi3")), seq_len=4096, hardware=cpu_machine)
    assert result.verdict == "warn" and result.exit_code == 0
    assert "exceeds the model's context of 2048" in result.reasons[0]


def _copy(tmp_path, folder, name="model"):
    target = tmp_path / name
    shutil.copytree(folder, target)
    return target


def test_missing_template_says_training_needs_one(tmp_path, tiny_model, cpu_machine):
    folder = _copy(tmp_path, tiny_model("llama"))
    (folder / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    result = check_model(str(folder), hardware=cpu_machine)
    assert result.verdict == "warn"
    assert result.info["chat_template"] == {"found": False}
    assert "no chat template: training and chat need one" in result.reasons[0]


def test_remote_code_is_refused_unless_trusted(tmp_path, tiny_model, cpu_machine):
    folder = _copy(tmp_path, tiny_model("llama"))
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="acme_lm", auto_map={"AutoConfig": "acme.AcmeConfig",
                                                  "AutoModelForCausalLM": "acme.AcmeForCausalLM"})  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))
    refused = check_model(str(folder), hardware=cpu_machine)
    assert refused.verdict == "error" and refused.exit_code == 2
    assert "needs trust_remote_code" in refused.reasons[0]
    assert "--trust-remote-code" in refused.suggestions[0]
    trusted = check_model(str(folder), trust_remote_code=True, hardware=cpu_machine)
    assert trusted.verdict == "warn"
    assert any("runs its own Python code" in r for r in trusted.reasons)
    assert any("does not support the acme_lm" in r for r in trusted.reasons)


def test_non_causal_model_is_an_error(tmp_path, cpu_machine):
    folder = tmp_path / "bert"
    BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32).save_pretrained(folder)
    result = check_model(str(folder), hardware=cpu_machine)
    assert result.verdict == "error" and result.exit_code == 2
    assert "is a bert model, which is not a causal" in result.reasons[0]


def test_a_family_outside_the_registry_is_trainable_but_not_gguf_exportable(tmp_path, cpu_machine, tiny_model):
    folder = tmp_path / "stablelm"
    StableLmConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                   num_key_value_heads=1, vocab_size=1000).save_pretrained(folder)  # fmt: skip
    shutil.copy(tiny_model("llama") / "tokenizer.json", folder / "tokenizer.json")
    result = check_model(str(folder), hardware=cpu_machine)
    assert result.verdict == "warn" and result.info["gguf_export"] is False
    assert any("GGUF export does not support the stablelm" in r for r in result.reasons)
    assert any("Gemma 3" in s and "Qwen 3" in s for s in result.suggestions)  # the supported families, by name


def test_folder_without_config_and_corrupt_config_are_bad_input(tmp_path, tiny_model):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BadInput, match="has no config.json"):
        check_model(str(empty))
    with pytest.raises(NotFound, match="no folder"):
        check_model(str(tmp_path / "absent"))
    broken = _copy(tmp_path, tiny_model("qwen2"), "broken")
    (broken / "config.json").write_text('{"model_type": "qwen2", "hidden_size": ')
    with pytest.raises(BadInput, match=r"config.json: not valid JSON"):
        check_model(str(broken))
    (broken / "config.json").write_text("[1, 2]")
    with pytest.raises(BadInput, match="expected a JSON object"):
        check_model(str(broken))
