"""Llama 3.x (and Llama 3.2's dated system header): llama.cpp's "llama" architecture with normal RoPE."""

from ftstudio.families import pretokenizers
from ftstudio.families.base import Chat, Family, Layout, Tiny, TinyTokenizer

# Llama 3.2's template writes a system turn with a dated header even when the conversation has none.
OLLAMA = (
    "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: {TODAY}\n\n"
    '{{ range .Messages }}{{ if eq .Role "system" }}{{ .Content }}{{ end }}{{ end }}<|eot_id|>'
    '{{ range .Messages }}{{ if ne .Role "system" }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n'
    "{{ .Content }}<|eot_id|>{{ end }}{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n"
)

FAMILY = Family(
    name="llama",
    label="Llama 3.x",
    model_types=("llama",),
    layout=Layout("llama", permute_qk=True),
    chat=Chat(
        end_of_turn="<|eot_id|>",
        system_role=True,
        markers=("<|start_header_id|>",),
        ollama=OLLAMA,
        date_format="%d %b %Y",
    ),
    tiny=Tiny(
        # Llama 3.1+'s per-frequency RoPE scaling (written to GGUF as the rope_freqs tensor), small enough here
        # that some frequencies are really scaled.
        config={
            "model_type": "llama",
            "tie_word_embeddings": True,
            "rope_parameters": {
                "rope_type": "llama3",
                "rope_theta": 500000.0,
                "factor": 32.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 1024,
            },
        },  # fmt: skip
        tokenizer=TinyTokenizer(
            "byte-level",
            specials=(
                "<|begin_of_text|>",
                "<|end_of_text|>",
                "<|start_header_id|>",
                "<|end_header_id|>",
                "<|eot_id|>",
            ),  # fmt: skip
            bos="<|begin_of_text|>",
            eos="<|eot_id|>",
            add_bos=True,
            split=pretokenizers.LLAMA3,
            ignore_merges=True,
            generation_eos=("<|end_of_text|>", "<|eot_id|>"),
        ),
        template="llama3.jinja",
    ),
)
