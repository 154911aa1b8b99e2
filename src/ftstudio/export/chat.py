"""The model's own chat template: reading it from a model folder, rendering it, and finding its end-of-turn token.

Rendering is transformers' own (its sandboxed jinja2 environment with `raise_exception`, `strftime_now` and the
`{% generation %}` tag), so what export derives from the template (the end-of-turn token, the Ollama template's
default system text) is what training saw.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
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
    source: str = "the chat template"  # the file it was read from, for messages

    @classmethod
    def from_folder(cls, folder: Path) -> ChatFormat:
        """Read the chat template and special tokens; BadInput when the model has no chat template."""
        config = _json(folder / "tokenizer_config.json")
        template = config.get("chat_template")
        source = folder / "tokenizer_config.json"
        if (folder / "chat_template.jinja").is_file():
            source = folder / "chat_template.jinja"
            template = source.read_text(encoding="utf-8")
        elif (folder / "chat_template.json").is_file():
            source = folder / "chat_template.json"
            template = _json(source).get("chat_template")
        if isinstance(template, list):  # named templates: the default one
            template = next((t["template"] for t in template if t.get("name") == "default"), template[0]["template"])
        if not template:
            raise BadInput(
                f"{folder} has no chat template (tokenizer_config.json, chat_template.jinja)",
                hint="train from an instruct model, whose tokenizer carries its chat template",
            )
        added = _json(folder / "tokenizer.json").get("added_tokens", [])
        specials = tuple(sorted({t["content"] for t in added if t.get("special")}, key=len, reverse=True))
        bos, eos = _token_text(config.get("bos_token")), _token_text(config.get("eos_token"))
        return cls(template, bos, eos, specials, str(source))

    def render(self, messages: list[dict[str, str]], add_generation_prompt: bool = True, **kwargs: Any) -> str:
        """The template's text for `messages` (dicts with role and content); `kwargs` reach the template.

        Raises BadInput naming the template's file when it cannot render them.
        """
        from transformers.utils.chat_template_utils import render_jinja_template

        try:
            rendered, _ = render_jinja_template(
                [messages],
                chat_template=self.template,
                add_generation_prompt=add_generation_prompt,
                bos_token=self.bos or "",
                eos_token=self.eos or "",
                **kwargs,
            )
        except Exception as exc:  # jinja2's syntax and template errors, or whatever the template's code raises
            raise BadInput(
                f"{self.source}: the chat template cannot render a conversation ({type(exc).__name__}: {exc})",
                hint="fix the template (or replace it with the base model's published one), then export again; "
                "--format merged or adapter do not need it",
            ) from exc
        return rendered[0]

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
