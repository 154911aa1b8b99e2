"""The tiny-model kit: real folders that load offline through the same path as a hub model."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from ftstudio.basemodels.tiny import ARCHITECTURES
from ftstudio.families import FAMILIES, pretokenizers

CHAT = [{"role": "user", "content": "What is 25 × 4?"}, {"role": "assistant", "content": "It is 100."}]
EXPECTED = {
    "llama": ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
              "Today Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
              "What is 25 × 4?<|eot_id|>"
              "<|start_header_id|>assistant<|end_header_id|>\n\nIt is 100.<|eot_id|>"),
    "qwen2": ("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
              "<|im_start|>user\nWhat is 25 × 4?<|im_end|>\n<|im_start|>assistant\nIt is 100.<|im_end|>\n"),
    "qwen3": ("<|im_start|>user\nWhat is 25 × 4?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
              "It is 100.<|im_end|>\n"),
    "phi3": "<|user|>\nWhat is 25 × 4?<|end|>\n<|assistant|>\nIt is 100.<|end|>\n<|endoftext|>",
    "phi4-mini": "<|user|>What is 25 × 4?<|end|><|assistant|>It is 100.<|end|><|endoftext|>",
    "mistral": "<s>[INST] What is 25 × 4? [/INST]It is 100.</s>",
    "gemma2": "<bos><start_of_turn>user\nWhat is 25 × 4?<end_of_turn>\n<start_of_turn>model\nIt is 100.<end_of_turn>\n",
    "gemma3": "<bos><start_of_turn>user\nWhat is 25 × 4?<end_of_turn>\n<start_of_turn>model\nIt is 100.<end_of_turn>\n",
    "granite": ("<|start_of_role|>system<|end_of_role|>Knowledge Cutoff Date: April 2024. Today's Date: July 26, 2024. "
                "You are Granite, developed by IBM. You are a helpful AI assistant.<|end_of_text|>\n"
                "<|start_of_role|>user<|end_of_role|>What is 25 × 4?<|end_of_text|>\n"
                "<|start_of_role|>assistant<|end_of_role|>It is 100.<|end_of_text|>\n"),
    "olmo2": "<|endoftext|><|user|>\nWhat is 25 × 4?\n<|assistant|>\nIt is 100.<|endoftext|>",
    "smollm3": ("<|im_start|>system\n## Metadata\n\nKnowledge Cutoff Date: June 2025\n"
                "Reasoning Mode: /no_think\n\n## Custom Instructions\n\nYou are a helpful AI assistant named SmolLM, "
                "trained by Hugging Face.\n\n<|im_end|>\n<|im_start|>user\nWhat is 25 × 4?<|im_end|>\n"
                "<|im_start|>assistant\n<think>\n\n</think>\nIt is 100.<|im_end|>\n"),
}  # fmt: skip


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_kit_model_loads_offline_with_its_family_template(tiny_model, arch, monkeypatch, frozen_today):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = tiny_model(arch)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert AutoConfig.from_pretrained(folder).model_type == FAMILIES[arch].tiny.config["model_type"]
    # Dated templates read the clock (strftime_now); SmolLM3's thinking switch is off here.
    rendered = tokenizer.apply_chat_template(CHAT, tokenize=False, enable_thinking=False)
    assert rendered == EXPECTED[arch]
    # Special tokens are single tokens, never split into pieces.
    for token in tokenizer.all_special_tokens:
        assert tokenizer.convert_tokens_to_ids(token) != tokenizer.unk_token_id or token == tokenizer.unk_token
    ids = tokenizer(EXPECTED[arch], add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits
    assert logits.shape == (1, len(ids), len(tokenizer))
    assert logits.std() > 0.1  # weights spread enough for logit comparisons to mean something


@pytest.mark.parametrize(("arch", "pattern"), [("llama", pretokenizers.LLAMA3), ("qwen2", pretokenizers.QWEN2)])
def test_byte_level_families_split_with_their_real_regex(tiny_model, arch, pattern):
    spec = json.loads((tiny_model(arch) / "tokenizer.json").read_text())
    split = spec["pre_tokenizer"]["pretokenizers"][0]
    assert split["type"] == "Split" and split["pattern"]["Regex"] == pattern
    # Llama 3 groups digits by three, Qwen 2 splits every digit.
    pre = AutoTokenizer.from_pretrained(tiny_model(arch)).backend_tokenizer.pre_tokenizer
    pieces = [piece for piece, _ in pre.pre_tokenize_str("12345")]
    assert pieces == (["123", "45"] if arch == "llama" else ["1", "2", "3", "4", "5"])


@pytest.mark.parametrize("arch", ["phi3", "mistral"])
def test_sentencepiece_families_have_byte_fallback(tiny_model, arch):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model(arch))
    assert tokenizer.convert_ids_to_tokens(3) == "<0x00>"
    text = "never seen: ꙮ"
    assert tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]) == text


def test_four_bit_claim(tiny_model):
    config = json.loads((tiny_model("llama", quantized_4bit=True) / "config.json").read_text())
    assert config["quantization_config"]["load_in_4bit"] is True
    assert config["quantization_config"]["bnb_4bit_quant_type"] == "nf4"
