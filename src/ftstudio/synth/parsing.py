"""Turn a helper model's reply into question-answer pairs, however it wrapped them.

Local models think aloud (`<think>…</think>`), fence JSON in code blocks, add prose around it, leave trailing commas
or stop mid-array when they run out of tokens. `parse_pairs` strips and repairs what it can and returns the pairs it
recovered; a reply with nothing usable raises `ValueError` naming why.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

PAIRS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "pairs": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"question": {"type": "string"}, "answer": {"type": "string"}},
                "required": ["question", "answer"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["pairs"],
    "additionalProperties": False,
}


def pairs_schema(paraphrases: int = 0, followups: bool = False) -> dict[str, Any]:
    """PAIRS_SCHEMA, with each pair also carrying its `paraphrases` and a `followup` pair when those are asked for."""
    if not paraphrases and not followups:
        return PAIRS_SCHEMA
    item = json.loads(json.dumps(PAIRS_SCHEMA["properties"]["pairs"]["items"]))
    if paraphrases:
        item["properties"]["paraphrases"] = {"type": "array", "items": {"type": "string"}}
        item["required"].append("paraphrases")
    if followups:
        item["properties"]["followup"] = PAIRS_SCHEMA["properties"]["pairs"]["items"]
        item["required"].append("followup")
    return {**PAIRS_SCHEMA, "properties": {"pairs": {"type": "array", "items": item}}}


_THINK = re.compile(r"<(think|thinking|reasoning)>.*?</\1>", re.S | re.I)
_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)(?:```|\Z)", re.S)
_TRAILING_COMMA = re.compile(r",\s*([\]}])")
_QUESTION_KEYS = ("question", "instruction", "q", "prompt", "input")
_ANSWER_KEYS = ("answer", "output", "a", "response", "completion")


@dataclass(frozen=True)
class Pair:
    question: str
    answer: str
    paraphrases: tuple[str, ...] = ()
    followup: Pair | None = None


def strip_wrapping(text: str) -> str:
    """Remove reasoning blocks (closed, or an unclosed one's lone end tag) and take the first fenced block if any."""
    text = _THINK.sub("", text)
    for tag in ("</think>", "</thinking>", "</reasoning>"):
        if tag in text.lower():
            text = text[text.lower().rindex(tag) + len(tag) :]
    fence = _FENCE.search(text)
    if fence and ("{" in fence.group(1) or "[" in fence.group(1)):
        text = fence.group(1)
    return text.strip()


def _brackets(text: str, start: int = 0) -> Iterator[tuple[int, str]]:
    """(index, char) of each bracket outside JSON strings, from `start`."""
    in_str, escaped = False, False
    for i in range(start, len(text)):
        c = text[i]
        if in_str:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
        elif c in "{[}]":
            yield i, c


def _balanced_end(text: str, start: int) -> int | None:
    """Index just past the bracket closing the one at `start`, honouring strings; None if it never closes."""
    stack: list[str] = []
    for i, c in _brackets(text, start):
        if c in "{[":
            stack.append("}" if c == "{" else "]")
        elif not stack or stack.pop() != c:
            return None
        elif not stack:
            return i + 1
    return None


def _close_truncated(text: str) -> str:
    """Cut a truncated JSON text back to its last complete element and close what is open."""
    stack: list[str] = []
    last_ok = None
    for i, c in _brackets(text):
        if c in "{[":
            stack.append("}" if c == "{" else "]")
        elif stack:
            stack.pop()
            last_ok = (i + 1, list(stack))
    if last_ok is None:
        return text
    end, open_ = last_ok
    return text[:end] + "".join(reversed(open_))


def _loads_lenient(text: str) -> Any:
    attempts = [text, _TRAILING_COMMA.sub(r"\1", text)]
    smart = text.translate(str.maketrans({"“": '"', "”": '"'}))
    attempts.append(_TRAILING_COMMA.sub(r"\1", smart))
    for attempt in attempts:
        try:
            return json.loads(attempt, strict=False)
        except ValueError:
            continue
    raise ValueError("not valid JSON")


def extract_json(text: str) -> Any:
    """The first JSON object or array in `text`, repaired if needed; ValueError if none can be read."""
    body = text.strip()
    if body[:1] in ("{", "["):
        try:
            return json.loads(body)  # the common case (structured output): a reply that is JSON is taken whole
        except ValueError:
            pass
    body = strip_wrapping(text)
    if not body:
        raise ValueError("empty reply")
    if body[0] in "{[":
        try:
            return json.loads(body)  # unwrapped (reasoning, fences), it is JSON: no scanning needed
        except ValueError:
            pass
    starts = [i for i in (body.find("{"), body.find("[")) if i >= 0]
    if not starts:
        raise ValueError("no JSON in the reply")
    start = min(starts)
    end = _balanced_end(body, start)
    candidate = body[start:end] if end else _close_truncated(_TRAILING_COMMA.sub(r"\1", body[start:]))
    try:
        return _loads_lenient(candidate)
    except ValueError:
        return _loads_lenient(_close_truncated(candidate))


def _field(item: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    value = item.get(keys[0])
    if isinstance(value, str):  # the schema's own key, as structured output writes it
        return value.strip()
    lowered = {str(k).lower(): v for k, v in item.items()}
    for key in keys:
        value = lowered.get(key)
        if isinstance(value, str):
            return value.strip()
    return None


def parse_pairs(text: str) -> list[Pair]:
    """Every question-answer pair in a reply (`{"pairs": [...]}`, a bare list, or one object)."""
    data = extract_json(text)
    if isinstance(data, dict):
        items = next((v for v in data.values() if isinstance(v, list)), None)
        if items is None:
            items = [data]
    elif isinstance(data, list):
        items = data
    else:
        raise ValueError(f"expected an object or a list, got {type(data).__name__}")
    pairs = []
    for item in items:
        if isinstance(item, dict):
            q, a = _field(item, _QUESTION_KEYS), _field(item, _ANSWER_KEYS)
            if q is not None and a is not None:
                pairs.append(Pair(q, a, _phrasings(item.get("paraphrases")), _followup(item.get("followup"))))
    if not pairs:
        raise ValueError("no question/answer objects in the JSON")
    return pairs


def _phrasings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(v.strip() for v in value if isinstance(v, str) and v.strip())


def _followup(value: Any) -> Pair | None:
    if not isinstance(value, dict):
        return None
    q, a = _field(value, _QUESTION_KEYS), _field(value, _ANSWER_KEYS)
    return Pair(q, a) if q and a else None
