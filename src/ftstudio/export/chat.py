"""The model's own chat template: reading it from a model folder, rendering it, and finding its end-of-turn token.

Rendering follows transformers (`jinja2` sandbox, `trim_blocks`, `lstrip_blocks`, `raise_exception`), so what
export derives from the template (the end-of-turn token, the Ollama template's default system text) is what training
saw.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from ftstudio.errors import BadInput

_MARKER = "\x00ftstudio-marker\x00"


@dataclass(frozen=True)
class ChatFormat:
    """A model folder's chat template and special tokens."""

    template: str
    bos: str | None
    eos: str | None
    specials: tuple[str, ...]  # every special token text, longest first

    @classmethod
    def from_folder(cls, folder: Path) -> ChatFormat:
        """Read the chat template and special tokens; BadInput when the model has no chat template."""
        config = _json(folder / "tokenizer_config.json")
        template = config.get("chat_template")
        if (folder / "chat_template.jinja").is_file():
            template = (folder / "chat_template.jinja").read_text(encoding="utf-8")
        elif (folder / "chat_template.json").is_file():
            template = _json(folder / "chat_template.json").get("chat_template")
        if isinstance(template, list):  # named templates: the default one
            template = next((t["template"] for t in template if t.get("name") == "default"), template[0]["template"])
        if not template:
            raise BadInput(
                f"{folder} has no chat template (tokenizer_config.json, chat_template.jinja)",
                hint="train from an instruct model, whose tokenizer carries its chat template",
            )
        added = _json(folder / "tokenizer.json").get("added_tokens", [])
        specials = tuple(sorted({t["content"] for t in added if t.get("special")}, key=len, reverse=True))
        return cls(template, _token_text(config.get("bos_token")), _token_text(config.get("eos_token")), specials)

    @cached_property
    def _compiled(self):
        from jinja2.exceptions import TemplateError
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        def raise_exception(message: str) -> None:
            raise TemplateError(message)

        env = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
        )
        env.filters["tojson"] = lambda value, indent=None: json.dumps(value, ensure_ascii=False, indent=indent)
        env.globals["raise_exception"] = raise_exception
        return env.from_string(self.template)

    def render(self, messages: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """The template's text for `messages` (dicts with role and content)."""
        return self._compiled.render(
            messages=messages,
            add_generation_prompt=add_generation_prompt,
            bos_token=self.bos or "",
            eos_token=self.eos or "",
        )

    def end_of_turn(self) -> str:
        """The special token that closes an assistant turn (<|eot_id|>, <|im_end|>, <|end|>, </s>…)."""
        text = self.render([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": _MARKER}], False)
        after = text.split(_MARKER, 1)[1] if _MARKER in text else ""
        token = next((s for s in self.specials if after.startswith(s)), None)
        if token is None and self.eos is None:
            raise BadInput("the chat template closes an assistant turn with no special token and there is no EOS")
        return token or self.eos  # type: ignore[return-value]

    def supports_system(self) -> bool:
        try:
            text = self.render([{"role": "system", "content": _MARKER}, {"role": "user", "content": "Hi"}])
        except Exception:
            return False
        return _MARKER in text


def _token_text(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("content")
    return value


def _json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
