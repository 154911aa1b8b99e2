"""The Ollama Modelfile beside each GGUF: FROM, a TEMPLATE equal to the model's chat template, stop tokens, SYSTEM.

Ollama renders prompts with Go's text/template, not Jinja, so each family's chat format has its Go equivalent in
the family registry (`ftstudio.families`), written against Ollama's data (`.Messages` with `.Role` and `.Content`;
Ollama puts the SYSTEM text into `.Messages` as a system message). Ollama's tokenizer adds BOS itself when the GGUF
says so, so the templates leave it out. Text the HF template adds by itself (Qwen's default system prompt) is read
from it; a dated header gets the export's date.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from ftstudio import families
from ftstudio.errors import BadInput
from ftstudio.export.chat import ChatFormat


@dataclass(frozen=True)
class OllamaChat:
    """What Ollama needs to chat like the model was trained: Go template and stop strings."""

    family: str
    template: str
    stop: tuple[str, ...]


def ollama_chat(chat: ChatFormat, eos_tokens: list[str], today: date | None = None) -> OllamaChat:
    """The Go template and stop strings for `chat` (a dated header gets `today`, by default the current date);
    BadInput when its format is not one a family in the registry has."""
    family = families.for_template(chat.template)
    if family is None:
        known = ", ".join(f.label for f in families.FAMILIES.values())
        raise BadInput(
            f"the model's chat template is not one the Modelfile writer knows ({known})",
            hint="write the Modelfile's TEMPLATE by hand; the GGUF itself carries the chat template",
        )
    template = family.chat.ollama
    if "{DEFAULT_SYSTEM}" in template:
        template = template.replace("{DEFAULT_SYSTEM}", _chatml_default_system(chat))
    if family.chat.date_format:
        template = template.replace("{TODAY}", (today or date.today()).strftime(family.chat.date_format))
    stop = tuple(dict.fromkeys([chat.end_of_turn(), *eos_tokens]))
    return OllamaChat(family.name, template, stop)


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
