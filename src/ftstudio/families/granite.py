"""Granite 3.x: Llama's layout with four multipliers (embedding, residual, attention, logits), a StarCoder-style
byte-level tokenizer (digits split one by one), and role markers with a dated default system prompt."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ftstudio.families.base import Chat, Config, Family, Layout, Tiny, TinyTokenizer

if TYPE_CHECKING:
    import gguf


def metadata(writer: gguf.GGUFWriter, config: Config) -> None:
    # llama.cpp names the multipliers "scales"; the logit scale divides the logits, as Granite's logits_scaling does.
    if config.get("attention_multiplier"):
        writer.add_attention_scale(config["attention_multiplier"])
    if config.get("embedding_multiplier"):
        writer.add_embedding_scale(config["embedding_multiplier"])
    if config.get("residual_multiplier"):
        writer.add_residual_scale(config["residual_multiplier"])
    if config.get("logits_scaling"):
        writer.add_logit_scale(config["logits_scaling"])


OLLAMA = (
    '{{ $system := "" }}{{ $has := false }}{{ range $i, $m := .Messages }}'
    '{{ if and (eq $i 0) (eq $m.Role "system") }}{{ $system = $m.Content }}{{ $has = true }}{{ end }}{{ end }}'
    "<|start_of_role|>system<|end_of_role|>{{ if $has }}{{ $system }}{{ else }}Knowledge Cutoff Date: April 2024. "
    "Today's Date: {TODAY}. You are Granite, developed by IBM. You are a helpful AI assistant.{{ end }}"
    "<|end_of_text|>\n"
    '{{ range $i, $m := .Messages }}{{ if not (and (eq $i 0) (eq $m.Role "system")) }}'
    "<|start_of_role|>{{ $m.Role }}<|end_of_role|>{{ $m.Content }}<|end_of_text|>\n{{ end }}{{ end }}"
    "<|start_of_role|>assistant<|end_of_role|>"
)

FAMILY = Family(
    name="granite",
    label="Granite 3.x",
    model_types=("granite",),
    layout=Layout("granite", permute_qk=True, metadata=metadata),
    chat=Chat(
        end_of_turn="<|end_of_text|>",
        system_role=True,
        markers=("<|start_of_role|>",),
        ollama=OLLAMA,
        date_format="%B %d, %Y",
    ),  # fmt: skip
    tiny=Tiny(
        config={
            "model_type": "granite",
            "tie_word_embeddings": True,
            "embedding_multiplier": 12.0,
            "residual_multiplier": 0.22,
            "attention_multiplier": 0.0625,
            "logits_scaling": 2.0,
        },  # fmt: skip
        tokenizer=TinyTokenizer(
            "byte-level",
            specials=("<|end_of_text|>", "<|start_of_role|>", "<|end_of_role|>", "<|tool_call|>"),
            bos="<|end_of_text|>",
            eos="<|end_of_text|>",
            pad="<|end_of_text|>",
            digits=True,
            clean_up_spaces=True,
            generation_eos=("<|end_of_text|>",),
        ),
        template="granite.jinja",
    ),
)
