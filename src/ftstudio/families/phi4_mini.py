"""Phi-4-mini: Phi-3's architecture (model_type "phi3") with partial rotary (0.75), LongRoPE, tied embeddings and
an o200k byte-level vocabulary ("gpt-4o" in llama.cpp); its turns carry no newlines."""

from ftstudio.families import phi3, pretokenizers
from ftstudio.families.base import Chat, Config, Family, Tiny, TinyTokenizer


def _is_phi4_mini(config: Config) -> bool:
    rope = config.get("rope_parameters") or {}
    return bool(config.get("partial_rotary_factor") or rope.get("partial_rotary_factor"))


FAMILY = Family(
    name="phi4-mini",
    label="Phi-4-mini",
    model_types=(),  # written by phi3's layout
    layout=phi3.LAYOUT,
    chat=Chat(
        end_of_turn="<|end|>",
        system_role=True,
        markers=("'<|' + message['role'] + '|>'",),
        ollama="{{ range .Messages }}<|{{ .Role }}|>{{ .Content }}<|end|>{{ end }}<|assistant|>",
    ),
    tiny=Tiny(
        config={
            "model_type": "phi3",
            "partial_rotary_factor": 0.75,
            "tie_word_embeddings": True,
            # llama.cpp picks the long factors when its context exceeds the original one, transformers when the
            # sequence does: the tests' 2048-token context stays within 2048, so both use the short factors.
            "max_position_embeddings": 8192,
            "original_max_position_embeddings": 2048,
            # head_dim 16 × 0.75 = 12 rotary dimensions: 6 factors each
            "rope_scaling": {
                "rope_type": "longrope",
                "long_factor": [1.0, 1.2, 1.9, 3.1, 4.6, 6.0],
                "short_factor": [1.0, 1.05, 1.1, 1.3, 1.6, 2.0],
            },
        },  # fmt: skip
        tokenizer=TinyTokenizer(
            "byte-level",
            specials=("<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"),
            bos="<|endoftext|>",
            eos="<|endoftext|>",
            pad="<|endoftext|>",
            split=pretokenizers.GPT4O,
            generation_eos=("<|end|>", "<|endoftext|>"),
        ),
        template="phi4-mini.jinja",
    ),
    match=_is_phi4_mini,
)
