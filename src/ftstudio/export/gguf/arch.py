"""A model's architecture in GGUF: which family writes it, its hyper-parameters as llama.cpp reads them, and each
tensor's layout.

The family registry (`ftstudio.families`) says how each family is laid out; this module applies it to one config:
the hyper-parameters every decoder has, RoPE and its scaling (Llama 3's `rope_freqs` tensor, linear), then the
family's own keys and computed tensors. Tensor names come from `gguf.TensorNameMap`.
"""

from __future__ import annotations

import math
from typing import Any

import gguf
import numpy as np

from ftstudio import families
from ftstudio.errors import BadInput
from ftstudio.families.base import Family, head_dim, rope_parameters

_MERGED_HINT = "export with --format merged or --format adapter instead; both work for any architecture"


def family_for(config: dict[str, Any]) -> Family:
    """The family that writes this config.json; BadInput naming the supported ones otherwise."""
    family = families.for_config(config)
    if family is None or config.get("model_type") not in families.gguf_model_types():
        supported = ", ".join(sorted(families.gguf_model_types()))
        raise BadInput(
            f"the GGUF exporter does not support architecture {config.get('model_type')!r} (supported: {supported})",
            hint=_MERGED_HINT,
        )
    problem = family.layout.check(config) if family.layout.check else None
    if problem:
        raise BadInput(f"this {family.label} model cannot be exported to GGUF: {problem}", hint=_MERGED_HINT)
    rope_type = rope_parameters(config)["rope_type"]
    if rope_type not in ("default", "linear", "llama3", "longrope", "su"):
        raise BadInput(
            f"RoPE scaling {rope_type!r} of this {family.label} model is not supported by the GGUF exporter",
            hint="export with --format merged and convert with llama.cpp's convert_hf_to_gguf.py",
        )
    return family


def write_metadata(writer: gguf.GGUFWriter, family: Family, config: dict[str, Any]) -> None:
    """Architecture hyper-parameters as llama.cpp reads them."""
    rope = rope_parameters(config)
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_head_count_kv(config.get("num_key_value_heads") or config["num_attention_heads"])
    writer.add_layer_norm_rms_eps(config.get("rms_norm_eps", 1e-5))
    writer.add_rope_freq_base(float(rope.get("rope_theta") or 10000.0))
    writer.add_vocab_size(config["vocab_size"])
    dim = head_dim(config)
    partial = config.get("partial_rotary_factor") or rope.get("partial_rotary_factor") or 1.0
    writer.add_rope_dimension_count(int(dim * partial))
    if dim != config["hidden_size"] // config["num_attention_heads"]:
        writer.add_key_length(dim)
        writer.add_value_length(dim)
    if rope["rope_type"] == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(rope["factor"])
    if family.layout.metadata:
        family.layout.metadata(writer, config)


def extra_tensors(family: Family, config: dict[str, Any]) -> dict[str, np.ndarray]:
    """Tensors computed from the config rather than read (Llama 3's `rope_freqs`, Phi-3's LongRoPE factors)."""
    out = {}
    freqs = rope_freqs(config)
    if freqs is not None:
        out[gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight"] = freqs
    if family.layout.tensors:
        out.update(family.layout.tensors(config))
    return out


def rope_freqs(config: dict[str, Any]) -> np.ndarray | None:
    """Llama 3.1+'s per-frequency RoPE factors (the `rope_freqs` tensor), or None when the model has none."""
    rope = rope_parameters(config)
    if rope["rope_type"] != "llama3":
        return None
    theta = float(rope.get("rope_theta") or 10000.0)
    dim = head_dim(config)
    factor = rope.get("factor", 8.0)
    low, high = rope.get("low_freq_factor", 1.0), rope.get("high_freq_factor", 4.0)
    old_len = rope.get("original_max_position_embeddings", 8192)
    factors = []
    for freq in 1.0 / (theta ** (np.arange(0, dim, 2, dtype=np.float32) / dim)):
        wavelen = 2 * math.pi / freq
        if wavelen < old_len / high:
            factors.append(1.0)
        elif wavelen > old_len / low:
            factors.append(factor)
        else:
            smooth = (old_len / wavelen - low) / (high - low)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    return np.asarray(factors, dtype=np.float32)


def permute(weights: np.ndarray, n_head: int) -> np.ndarray:
    """Interleave the rotary halves of each head, as llama.cpp's normal RoPE expects (convert_hf_to_gguf's permute)."""
    shape = weights.shape
    return weights.reshape(n_head, 2, shape[0] // n_head // 2, *shape[1:]).swapaxes(1, 2).reshape(shape)


def transform(family: Family, config: dict[str, Any], gguf_name: str, data: np.ndarray) -> np.ndarray:
    """The tensor's layout in GGUF: Q and K permuted for normal-RoPE families, norms offset where the family's
    RMSNorm multiplies by 1 + w."""
    layout = family.layout
    if layout.permute_qk:
        if ".attn_q." in gguf_name:
            return permute(data, config["num_attention_heads"])
        if ".attn_k." in gguf_name:
            return permute(data, config.get("num_key_value_heads") or config["num_attention_heads"])
    if layout.norm_offset and gguf_name.endswith("norm.weight"):
        return data + np.float32(layout.norm_offset)
    return data
