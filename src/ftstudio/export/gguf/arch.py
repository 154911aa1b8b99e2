"""Per-architecture knowledge: which HF models the GGUF exporter supports, their metadata and tensor layouts.

Tensor names come from `gguf.TensorNameMap`; layouts follow llama.cpp's `convert_hf_to_gguf.py`: Llama and Mistral
store Q and K with their rotary halves interleaved (llama.cpp's "normal" RoPE), so those weights are permuted;
Qwen2 and Phi-3 use NeoX-style RoPE and keep the HF layout (Phi-3's fused qkv and gate_up included); a model with
tied embeddings has no output tensor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import gguf
import numpy as np

from ftstudio.basemodels.checks import GGUF_ARCHITECTURES
from ftstudio.errors import BadInput


@dataclass(frozen=True)
class ArchSpec:
    gguf_arch: gguf.MODEL_ARCH
    permute_qk: bool


# HF model_type → how to write it; the keys are the base-model checks' GGUF_ARCHITECTURES (a test holds them equal).
ARCH_SPECS: dict[str, ArchSpec] = {
    "llama": ArchSpec(gguf.MODEL_ARCH.LLAMA, permute_qk=True),
    "mistral": ArchSpec(gguf.MODEL_ARCH.LLAMA, permute_qk=True),
    "qwen2": ArchSpec(gguf.MODEL_ARCH.QWEN2, permute_qk=False),
    "phi3": ArchSpec(gguf.MODEL_ARCH.PHI3, permute_qk=False),
}


def arch_spec(config: dict[str, Any]) -> ArchSpec:
    """The spec for a model's config.json; BadInput naming the supported ones otherwise."""
    model_type = config.get("model_type")
    if model_type not in GGUF_ARCHITECTURES:
        raise BadInput(
            f"the GGUF exporter does not support architecture {model_type!r} "
            f"(supported: {', '.join(sorted(GGUF_ARCHITECTURES))})",
            hint="export with --format merged or --format adapter instead; both work for any architecture",
        )
    return ARCH_SPECS[model_type]


def head_dim(config: dict[str, Any]) -> int:
    return config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]


def _rope(config: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    params = dict(config.get("rope_parameters") or config.get("rope_scaling") or {})
    theta = config.get("rope_theta") or params.get("rope_theta") or 10000.0
    return float(theta), params


def write_metadata(writer: gguf.GGUFWriter, config: dict[str, Any]) -> None:
    """Architecture hyper-parameters as llama.cpp reads them."""
    model_type = config["model_type"]
    theta, rope = _rope(config)
    rope_type = rope.get("rope_type") or rope.get("type") or "default"
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_head_count_kv(config.get("num_key_value_heads") or config["num_attention_heads"])
    writer.add_layer_norm_rms_eps(config.get("rms_norm_eps", 1e-5))
    writer.add_rope_freq_base(theta)
    writer.add_vocab_size(config["vocab_size"])
    dim = head_dim(config)
    if model_type == "phi3":
        writer.add_rope_dimension_count(int(dim * config.get("partial_rotary_factor", 1.0)))
        orig = config.get("original_max_position_embeddings")
        if orig:
            writer.add_rope_scaling_orig_ctx_len(orig)
        if config.get("sliding_window"):
            writer.add_sliding_window(config["sliding_window"])
    else:
        writer.add_rope_dimension_count(dim)
    if dim != config["hidden_size"] // config["num_attention_heads"]:
        writer.add_key_length(dim)
        writer.add_value_length(dim)
    if rope_type == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(rope["factor"])
    elif rope_type not in ("default", "llama3"):
        raise BadInput(
            f"RoPE scaling {rope_type!r} of this {model_type} model is not supported by the GGUF exporter",
            hint="export with --format merged and convert with llama.cpp's convert_hf_to_gguf.py",
        )


def rope_freqs(config: dict[str, Any]) -> np.ndarray | None:
    """Llama 3.1+'s per-frequency RoPE factors (the `rope_freqs` tensor), or None when the model has none."""
    theta, rope = _rope(config)
    if (rope.get("rope_type") or rope.get("type")) != "llama3":
        return None
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


def transform(spec: ArchSpec, config: dict[str, Any], gguf_name: str, data: np.ndarray) -> np.ndarray:
    """The tensor's layout in GGUF (Llama/Mistral Q and K weights and biases permuted)."""
    if spec.permute_qk:
        if ".attn_q." in gguf_name:
            return permute(data, config["num_attention_heads"])
        if ".attn_k." in gguf_name:
            return permute(data, config.get("num_key_value_heads") or config["num_attention_heads"])
    return data
