"""Model families: one file per family, holding all that the other stages need to know about it.

Each module defines `FAMILY` (see `ftstudio.families.base.Family`): its config `model_type`s, its GGUF layout, its
chat-template facts and Ollama template, and the tiny model its tests build. The base-model checks, the trainer,
the GGUF exporter, the Modelfile writer and the tiny-model kit all read this registry. Adding a family is one
module here, its line in `FAMILIES`, and its tests. This package imports no stage of ftstudio.
"""

from __future__ import annotations

from ftstudio.families import (
    gemma2,
    gemma3,
    granite,
    llama,
    mistral,
    olmo2,
    phi3,
    phi4_mini,
    qwen2,
    qwen3,
    smollm3,
)
from ftstudio.families.base import Config, Family

# Order matters where families share a model_type or template markers: the more specific one first.
FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        llama.FAMILY,
        mistral.FAMILY,
        smollm3.FAMILY,
        qwen3.FAMILY,
        qwen2.FAMILY,
        gemma3.FAMILY,
        gemma2.FAMILY,
        phi4_mini.FAMILY,
        phi3.FAMILY,
        granite.FAMILY,
        olmo2.FAMILY,
    )
}
__all__ = ["FAMILIES", "Family", "end_of_turn_tokens", "for_config", "for_template", "gguf_model_types"]


def gguf_model_types() -> frozenset[str]:
    """Every config.json model_type the GGUF export writes."""
    return frozenset(t for f in FAMILIES.values() for t in f.model_types)


def for_config(config: Config) -> Family | None:
    """The family of a model's config.json (by model_type; families sharing one are told apart by `match`)."""
    model_type = config.get("model_type")
    sharing = [f for f in FAMILIES.values() if model_type in (*f.model_types, f.tiny.config.get("model_type"))]
    return next((f for f in sharing if f.match and f.match(config)), None) or next(
        (f for f in sharing if model_type in f.model_types), None
    )


def for_template(template: str) -> Family | None:
    """The family whose chat format `template` is, by its markers; None for a format no family knows."""
    return next((f for f in FAMILIES.values() if all(m in template for m in f.chat.markers)), None)


def end_of_turn_tokens() -> tuple[str, ...]:
    """The end-of-turn token texts of every family, for a trainer that meets a model's template."""
    return tuple(dict.fromkeys(f.chat.end_of_turn for f in FAMILIES.values()))
