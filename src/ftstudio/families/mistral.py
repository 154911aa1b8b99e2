"""Mistral and Ministral (model_type "mistral"): llama.cpp runs them as "llama", with normal RoPE."""

from ftstudio.families.base import Chat, Family, Layout, Tiny, TinyTokenizer

# No system role: the system text opens the first user turn, as the trainer folds it.
OLLAMA = (
    '{{ $system := "" }}{{ range .Messages }}{{ if eq .Role "system" }}{{ $system = .Content }}{{ end }}{{ end }}'
    '{{ $first := true }}{{ range .Messages }}{{ if eq .Role "user" }}[INST] '
    "{{ if and $first $system }}{{ $system }}\n\n{{ end }}{{ .Content }} [/INST]{{ $first = false }}"
    '{{ else if eq .Role "assistant" }}{{ .Content }}</s>{{ end }}{{ end }}'
)

FAMILY = Family(
    name="mistral",
    label="Mistral / Ministral",
    model_types=("mistral",),
    layout=Layout("llama", permute_qk=True),
    chat=Chat(end_of_turn="</s>", system_role=False, markers=("[INST]",), ollama=OLLAMA),
    tiny=Tiny(
        config={"model_type": "mistral"},
        tokenizer=TinyTokenizer(
            "sentencepiece",
            leading=("<unk>", "<s>", "</s>"),
            specials=(),
            bos="<s>",
            eos="</s>",
            unk="<unk>",
            add_bos=True,
            generation_eos=("</s>",),
        ),
        template="mistral.jinja",
    ),
)
