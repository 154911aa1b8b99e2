"""OLMo 2: norms after attention and feed-forward (none before), q/k norms over the whole projection, NeoX RoPE,
a cl100k byte-level vocabulary ("dbrx" in llama.cpp: Llama 3's regex without its whole-word rule), Tülu turns."""

from ftstudio.families import pretokenizers
from ftstudio.families.base import Chat, Family, Layout, Tiny, TinyTokenizer

OLLAMA = (
    '<|endoftext|>{{ range .Messages }}{{ if eq .Role "system" }}<|system|>\n{{ .Content }}\n'
    '{{ else if eq .Role "user" }}<|user|>\n{{ .Content }}\n'
    '{{ else if eq .Role "assistant" }}<|assistant|>\n{{ .Content }}<|endoftext|>\n{{ end }}{{ end }}<|assistant|>\n'
)

FAMILY = Family(
    name="olmo2",
    label="OLMo 2",
    model_types=("olmo2",),
    layout=Layout("olmo2", lm_head="required"),
    chat=Chat(
        end_of_turn="<|endoftext|>", system_role=True, markers=("<|user|>\n", "<|assistant|>\n"), ollama=OLLAMA
    ),  # fmt: skip
    layer_norm_parameters=lambda h, q, kv, d: 2 * h + q + kv,  # q/k norms over whole projections
    tiny=Tiny(
        config={"model_type": "olmo2"},
        tokenizer=TinyTokenizer(
            "byte-level",
            specials=("<|endoftext|>", "<|pad|>"),
            bos="<|endoftext|>",
            eos="<|endoftext|>",
            pad="<|pad|>",
            split=pretokenizers.LLAMA3,
            generation_eos=("<|endoftext|>",),
        ),
        template="olmo2.jinja",
    ),
)
