"""Gemma 3 text: Gemma 2's norms (1 + w) plus q/k norms, five sliding-window layers to one global, a local RoPE
base for the sliding layers, no attention soft-capping; the template folds a system message into the first turn."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ftstudio.families import gemma2
from ftstudio.families.base import Chat, Config, Family, Layout, Tiny, rope_parameters, sliding_window_metadata

if TYPE_CHECKING:
    import gguf


def metadata(writer: gguf.GGUFWriter, config: Config) -> None:
    if config.get("final_logit_softcapping"):
        writer.add_final_logit_softcapping(config["final_logit_softcapping"])
    if config.get("sliding_window"):
        sliding_window_metadata(writer, config)
        local = rope_parameters(config, "sliding_attention").get("rope_theta") or config.get("rope_local_base_freq")
        if local:
            writer.add_rope_freq_base_swa(local)


def check(config: Config) -> str | None:
    if config.get("attn_logit_softcapping"):
        return "attention soft-capping, which llama.cpp's Gemma 3 does not apply"
    return gemma2.attention_scale_check(62)(config)


FAMILY = Family(
    name="gemma3",
    label="Gemma 3 (text)",
    model_types=("gemma3_text",),
    layout=Layout("gemma3", norm_offset=1.0, metadata=metadata, check=check),
    chat=Chat(
        end_of_turn="<end_of_turn>",
        system_role=True,
        markers=("<start_of_turn>", "first_user_prefix"),
        ollama=gemma2.OLLAMA,
    ),  # fmt: skip
    layer_norm_parameters=lambda h, q, kv, d: 4 * h + 2 * d,
    tiny=Tiny(
        config={
            "model_type": "gemma3_text",
            "head_dim": 16,
            "query_pre_attn_scalar": 16,
            "sliding_window": 8,
            "layer_types": ["sliding_attention", "full_attention"],
            "tie_word_embeddings": True,
            "rope_parameters": {
                "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                "full_attention": {"rope_type": "default", "rope_theta": 1000000.0},
            },
        },
        tokenizer=gemma2.TOKENIZER,
        template="gemma3.jinja",
    ),  # fmt: skip
)
