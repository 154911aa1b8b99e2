"""Phi-3 / Phi-3.5 (model_type "phi3"): fused qkv and gate_up, NeoX RoPE, LongRoPE factors as tensors.

LongRoPE (`rope_type` "longrope"/"su") is written as llama.cpp's converter writes it: the long and short factor
lists as the `rope_factors_long`/`rope_factors_short` tensors, the original context length, and the attention
factor sqrt(1 + ln(scale) / ln(original context)) where the context was extended (scale > 1).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ftstudio.families.base import Chat, Config, Family, Layout, Tiny, TinyTokenizer, rope_parameters

if TYPE_CHECKING:
    import gguf
    import numpy as np


def original_context(config: Config) -> int | None:
    return config.get("original_max_position_embeddings") or rope_parameters(config).get(
        "original_max_position_embeddings"
    )


def metadata(writer: gguf.GGUFWriter, config: Config) -> None:
    original = original_context(config)
    if original:
        writer.add_rope_scaling_orig_ctx_len(original)
    # Phi-4's converter writes 0 for "no sliding window"; llama.cpp runs Phi-3 without one either way.
    writer.add_sliding_window(config.get("sliding_window") or 0)
    rope = rope_parameters(config)
    if rope["rope_type"] in ("longrope", "su"):
        scale = config["max_position_embeddings"] / original
        factor = math.sqrt(1 + math.log(scale) / math.log(original)) if scale > 1 else 1.0
        writer.add_rope_scaling_attn_factors(factor)


def tensors(config: Config) -> dict[str, np.ndarray]:
    import gguf
    import numpy as np

    rope = rope_parameters(config)
    if rope["rope_type"] not in ("longrope", "su"):
        return {}
    names = gguf.TENSOR_NAMES
    return {
        names[gguf.MODEL_TENSOR.ROPE_FACTORS_LONG] + ".weight": np.asarray(rope["long_factor"], dtype=np.float32),
        names[gguf.MODEL_TENSOR.ROPE_FACTORS_SHORT] + ".weight": np.asarray(rope["short_factor"], dtype=np.float32),
    }


LAYOUT = Layout("phi3", metadata=metadata, tensors=tensors)
OLLAMA = (
    '{{ range .Messages }}{{ if eq .Role "system" }}{{ if .Content }}<|system|>\n{{ .Content }}<|end|>\n{{ end }}'
    '{{ else if eq .Role "user" }}<|user|>\n{{ .Content }}<|end|>\n'
    '{{ else if eq .Role "assistant" }}<|assistant|>\n{{ .Content }}<|end|>\n{{ end }}{{ end }}<|assistant|>\n'
)

FAMILY = Family(
    name="phi3",
    label="Phi-3 / Phi-3.5",
    model_types=("phi3",),
    layout=LAYOUT,
    chat=Chat(end_of_turn="<|end|>", system_role=True, markers=("<|user|>\n", "<|end|>"), ollama=OLLAMA),
    tiny=Tiny(
        config={"model_type": "phi3"},
        # Phi-3's own release sets pad = eos = <|endoftext|>: a pitfall training must handle, so the kit keeps it.
        tokenizer=TinyTokenizer(
            "sentencepiece",
            leading=("<unk>", "<s>", "</s>"),
            specials=("<|endoftext|>", "<|assistant|>", "<|system|>", "<|end|>", "<|user|>"),
            bos="<s>",
            eos="<|endoftext|>",
            pad="<|endoftext|>",
            unk="<unk>",
            generation_eos=("<|endoftext|>", "<|assistant|>", "<|end|>"),
        ),
        template="phi3.jinja",
    ),
)
