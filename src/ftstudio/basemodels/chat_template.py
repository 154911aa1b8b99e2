"""Finding and rendering a model's chat template."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SAMPLE_CONVERSATION = (
    {"role": "system", "content": "You are a patient tutor."},
    {"role": "user", "content": "What is 25 × 4?"},
    {"role": "assistant", "content": "25 × 4 = 100."},
)


def find_chat_template(files: dict[str, Path]) -> tuple[str | None, str | None]:
    """The model's chat template and the file it came from, looking where transformers does; (None, None) if none."""
    if "chat_template.jinja" in files:
        return files["chat_template.jinja"].read_text(encoding="utf-8"), "chat_template.jinja"
    for name in ("chat_template.json", "tokenizer_config.json"):
        if name not in files:
            continue
        try:
            template = json.loads(files[name].read_text(encoding="utf-8")).get("chat_template")
        except (ValueError, AttributeError):
            continue
        if isinstance(template, list):  # named templates: [{"name": "default", "template": …}, …]
            named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
            template = named.get("default") or next(iter(named.values()), None)
        if isinstance(template, str) and template.strip():
            return template, name
    return None, None


def special_tokens(files: dict[str, Path]) -> dict[str, str]:
    """bos_token / eos_token / … strings from tokenizer_config.json, for rendering a template."""
    if "tokenizer_config.json" not in files:
        return {}
    try:
        raw = json.loads(files["tokenizer_config.json"].read_text(encoding="utf-8"))
    except ValueError:
        return {}
    tokens = {}
    for key in ("bos_token", "eos_token", "pad_token", "unk_token"):
        value = raw.get(key)
        if isinstance(value, dict):
            value = value.get("content")
        if isinstance(value, str):
            tokens[key] = value
    return tokens


def render_sample(template: str, tokens: dict[str, str]) -> tuple[str, bool]:
    """Render the sample conversation with transformers' own renderer; returns (text, system role supported).

    Some templates (Mistral's, Gemma's) refuse a system message; then the conversation is rendered without it.
    Raises whatever the template raises when it cannot render even that.
    """
    from transformers.utils.chat_template_utils import render_jinja_template

    def render(messages: list[dict[str, Any]]) -> str:
        rendered, _ = render_jinja_template([messages], chat_template=template, **tokens)
        return rendered[0]

    try:
        return render(list(SAMPLE_CONVERSATION)), True
    except Exception:  # noqa: BLE001 - a template's raise_exception surfaces as several exception types
        return render(list(SAMPLE_CONVERSATION[1:])), False
