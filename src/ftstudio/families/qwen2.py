"""Qwen 2 and 2.5: NeoX-style RoPE, q/k/v biases, ChatML with a default system prompt."""

from ftstudio.families import pretokenizers
from ftstudio.families.base import Chat, Family, Layout, Tiny, TinyTokenizer

CHATML = (
    '{{ range $i, $m := .Messages }}{{ if and (eq $i 0) (ne $m.Role "system") }}{DEFAULT_SYSTEM}{{ end }}'
    "<|im_start|>{{ $m.Role }}\n{{ $m.Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n"
)
TOKENIZER = TinyTokenizer(
    "byte-level",
    specials=("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
    eos="<|im_end|>",
    pad="<|endoftext|>",
    split=pretokenizers.QWEN2,
    generation_eos=("<|im_end|>", "<|endoftext|>"),
)

FAMILY = Family(
    name="qwen2",
    label="Qwen 2 / 2.5",
    model_types=("qwen2",),
    layout=Layout("qwen2"),
    chat=Chat(end_of_turn="<|im_end|>", system_role=True, markers=("<|im_start|>",), ollama=CHATML),
    qkv_bias=True,
    tiny=Tiny(
        config={"model_type": "qwen2", "tie_word_embeddings": True}, tokenizer=TOKENIZER, template="qwen2.jinja"
    ),  # fmt: skip
)
