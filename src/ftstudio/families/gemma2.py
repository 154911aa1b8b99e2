"""Gemma 2: norms stored as 1 + w, attention and final logit soft-capping, alternating sliding-window layers,
embeddings scaled by sqrt(hidden) (llama.cpp does that itself), tied output; no system role."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ftstudio.families.base import (
    Chat,
    Config,
    Family,
    Layout,
    Tiny,
    TinyTokenizer,
    head_dim,
    sliding_window_metadata,
)

if TYPE_CHECKING:
    import gguf


def metadata(writer: gguf.GGUFWriter, config: Config) -> None:
    writer.add_attn_logit_softcapping(config["attn_logit_softcapping"])
    writer.add_final_logit_softcapping(config["final_logit_softcapping"])
    sliding_window_metadata(writer, config)


def attention_scale_check(largest_layers: int):
    """llama.cpp scales Gemma's attention by 1/sqrt(head_dim), or 1/sqrt(hidden/heads) for the 27B (known by its
    layer count); a config whose query_pre_attn_scalar is neither would run differently."""

    def check(config: Config) -> str | None:
        expected = head_dim(config)
        if config["num_hidden_layers"] == largest_layers:
            expected = config["hidden_size"] // config["num_attention_heads"]
        scalar = config.get("query_pre_attn_scalar", expected)
        if scalar != expected:
            return (f"query_pre_attn_scalar {scalar} is not the {expected} llama.cpp uses for this "
                    f"{config['model_type']} model")  # fmt: skip
        return None

    return check


# Gemma's SentencePiece vocabulary: <pad> <eos> <bos> <unk> first, no "▁" prepended to the text.
TOKENIZER = TinyTokenizer(
    "sentencepiece",
    leading=("<pad>", "<eos>", "<bos>", "<unk>"),
    specials=("<start_of_turn>", "<end_of_turn>"),
    bos="<bos>",
    eos="<eos>",
    pad="<pad>",
    unk="<unk>",
    add_bos=True,
    prefix_space=False,
    generation_eos=("<eos>", "<end_of_turn>"),
)
# The system text opens the first user turn (Gemma 3's template does so itself; for Gemma 2 the trainer folds it).
OLLAMA = (
    '{{ $system := "" }}{{ range .Messages }}{{ if eq .Role "system" }}{{ $system = .Content }}{{ end }}{{ end }}'
    '{{ $first := true }}{{ range .Messages }}{{ if eq .Role "user" }}<start_of_turn>user\n'
    "{{ if and $first $system }}{{ $system }}\n\n{{ end }}{{ .Content }}<end_of_turn>\n{{ $first = false }}"
    '{{ else if eq .Role "assistant" }}<start_of_turn>model\n{{ .Content }}<end_of_turn>\n{{ end }}{{ end }}'
    "<start_of_turn>model\n"
)

FAMILY = Family(
    name="gemma2",
    label="Gemma 2",
    model_types=("gemma2",),
    layout=Layout(
        "gemma2", norm_offset=1.0, metadata=metadata, check=attention_scale_check(46), lm_head="embedding"
    ),  # fmt: skip
    chat=Chat(end_of_turn="<end_of_turn>", system_role=False, markers=("<start_of_turn>",), ollama=OLLAMA),
    layer_norm_parameters=lambda h, q, kv, d: 4 * h,  # norms before and after attention and MLP
    tiny=Tiny(
        config={
            "model_type": "gemma2",
            "head_dim": 16,
            "query_pre_attn_scalar": 16,
            "sliding_window": 8,
            "attn_logit_softcapping": 50.0,
            "final_logit_softcapping": 30.0,
            "tie_word_embeddings": True,
            "hidden_activation": "gelu_pytorch_tanh",
        },  # fmt: skip
        tokenizer=TOKENIZER,
        template="gemma2.jinja",
    ),
    attn_implementation="eager",  # transformers' Gemma 2 refuses sdpa (soft-capping)
)
