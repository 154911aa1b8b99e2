"""Qwen 3: Qwen 2's layout plus per-head q/k norms and an explicit head_dim; ChatML with thinking blocks.

A non-thinking answer is rendered (and trained) after an empty think block; Ollama's think switch off adds the
same empty block to the prompt, as `enable_thinking=False` does in the HF template.
"""

import dataclasses

from ftstudio.families import qwen2
from ftstudio.families.base import Chat, Family, Layout, Tiny

EMPTY_THINK = "<think>\n\n</think>\n\n"
OLLAMA = (
    "{{ range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n"
    "{{ if and $.IsThinkSet (not $.Think) }}" + EMPTY_THINK + "{{ end }}"
)

FAMILY = Family(
    name="qwen3",
    label="Qwen 3",
    model_types=("qwen3",),
    layout=Layout("qwen3"),
    chat=Chat(
        end_of_turn="<|im_end|>",
        system_role=True,
        markers=("<|im_start|>", "</think>"),
        ollama=OLLAMA,
        thinking=EMPTY_THINK,
    ),  # fmt: skip
    layer_norm_parameters=lambda h, q, kv, d: 2 * h + 2 * d,  # per-head q/k norms
    tiny=Tiny(
        config={"model_type": "qwen3", "head_dim": 32, "tie_word_embeddings": True},
        tokenizer=dataclasses.replace(qwen2.TOKENIZER, plain_added=("<think>", "</think>")),
        template="qwen3.jinja",
    ),
)
