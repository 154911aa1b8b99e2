"""The Ollama Modelfile beside each GGUF: FROM, a TEMPLATE equal to the model's chat template, stop tokens, SYSTEM.

Ollama renders prompts with Go's text/template, not Jinja, so each chat format the catalog uses has its Go
equivalent here, written against Ollama's data (`.Messages` with `.Role` and `.Content`; Ollama puts the SYSTEM
text into `.Messages` as a system message). Ollama's tokenizer adds BOS itself when the GGUF says so, so the
template leaves it out. Text the HF template adds by itself (Qwen's default system prompt) is read from it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ftstudio.errors import BadInput
from ftstudio.export.chat import ChatFormat

_LLAMA3 = (
    "{{ range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>{{ end }}"
    "<|start_header_id|>assistant<|end_header_id|>\n\n"
)
_CHATML = (
    '{{ range $i, $m := .Messages }}{{ if and (eq $i 0) (ne $m.Role "system") }}{DEFAULT_SYSTEM}{{ end }}'
    "<|im_start|>{{ $m.Role }}\n{{ $m.Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n"
)
_PHI3 = (
    '{{ range .Messages }}{{ if eq .Role "system" }}{{ if .Content }}<|system|>\n{{ .Content }}<|end|>\n{{ end }}'
    '{{ else if eq .Role "user" }}<|user|>\n{{ .Content }}<|end|>\n'
    '{{ else if eq .Role "assistant" }}<|assistant|>\n{{ .Content }}<|end|>\n{{ end }}{{ end }}<|assistant|>\n'
)
# Mistral's template has no system role: the system text opens the first user turn, as Mistral's later templates do.
_MISTRAL = (
    '{{ $system := "" }}{{ range .Messages }}{{ if eq .Role "system" }}{{ $system = .Content }}{{ end }}{{ end }}'
    '{{ $first := true }}{{ range .Messages }}{{ if eq .Role "user" }}[INST] '
    "{{ if and $first $system }}{{ $system }}\n\n{{ end }}{{ .Content }} [/INST]{{ $first = false }}"
    '{{ else if eq .Role "assistant" }}{{ .Content }}</s>{{ end }}{{ end }}'
)


@dataclass(frozen=True)
class OllamaChat:
    """What Ollama needs to chat like the model was trained: Go template and stop strings."""

    family: str
    template: str
    stop: tuple[str, ...]


def ollama_chat(chat: ChatFormat, eos_tokens: list[str]) -> OllamaChat:
    """The Go template and stop strings for `chat`; BadInput when its format is not one ftstudio knows."""
    source = chat.template
    if "<|start_header_id|>" in source:
        family, template = "llama3", _LLAMA3
    elif "<|im_start|>" in source:
        family, template = "chatml", _CHATML.replace("{DEFAULT_SYSTEM}", _chatml_default_system(chat))
    elif "<|user|>" in source and "<|assistant|>" in source:
        family, template = "phi3", _PHI3
    elif "[INST]" in source:
        family, template = "mistral", _MISTRAL
    else:
        raise BadInput(
            "the model's chat template is not one the Modelfile writer knows (Llama 3, ChatML, Phi-3, Mistral)",
            hint="write the Modelfile's TEMPLATE by hand; the GGUF itself carries the chat template",
        )
    stop = tuple(dict.fromkeys([chat.end_of_turn(), *eos_tokens]))
    return OllamaChat(family, template, stop)


def eos_texts(folder: Path) -> list[str]:
    """The texts of the tokens generation stops on in `folder` (generation_config's eos_token_id)."""
    path = folder / "generation_config.json"
    ids = json.loads(path.read_text(encoding="utf-8")).get("eos_token_id") if path.is_file() else None
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    spec = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    by_id = {t["id"]: t["content"] for t in spec.get("added_tokens", [])}
    return [by_id[i] for i in ids if i in by_id]


def _chatml_default_system(chat: ChatFormat) -> str:
    text = chat.render([{"role": "user", "content": "Hi"}])
    head = "<|im_start|>system\n"
    if text.startswith(head):
        return text[: text.index("<|im_end|>") + len("<|im_end|>\n")].replace("{{", "{{`{{`}}")
    return ""


def modelfile(gguf_name: str, chat: OllamaChat, system: str | None) -> str:
    """The Modelfile text for a GGUF lying beside it."""
    lines = [f"FROM ./{gguf_name}", f'TEMPLATE """{chat.template}"""']
    lines += [f"PARAMETER stop {_quote(s)}" for s in chat.stop]
    if system:
        lines.append(f'SYSTEM """{system}"""')
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
