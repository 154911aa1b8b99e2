"""The training-data file, `data/sft_data.jsonl`: read in any accepted form, written a whole line at a time.

Accepted forms, one JSON object per line (DESIGN.md):
- canonical/Alpaca: `{"instruction": …, "output": …}` with optional `"input"` and `"meta"`;
- ShareGPT: `{"conversations": [{"from": "human"|"gpt"|"system", "value": …}]}`;
- OpenAI chat: `{"messages": [{"role": "system"|"user"|"assistant", "content": …}]}`.

Every form is read into the same `Example` (a conversation of `Message`s). A bad line is reported with its number
and never silently dropped. Generation (synth) appends here, training reads from here.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ftstudio.errors import BadInput, NotFound

Role = Literal["system", "user", "assistant"]
Form = Literal["alpaca", "sharegpt", "openai"]

_SHAREGPT_ROLES: dict[str, Role] = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
}


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True)
class Example:
    """One training conversation: an optional system message, then user/assistant turns ending with the assistant."""

    messages: tuple[Message, ...]
    form: Form
    line: int = 0
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def prompt(self) -> str:
        """The last user message: what the model is asked."""
        return next(m.content for m in reversed(self.messages) if m.role == "user")

    @property
    def answer(self) -> str:
        """The final assistant message: what the model learns to say."""
        return self.messages[-1].content

    def to_canonical(self) -> dict[str, Any]:
        """The seed's `{"instruction", "output"}` form when the example is single-turn, else OpenAI messages."""
        turns = [m for m in self.messages if m.role != "system"]
        if len(turns) == 2 and len(turns) == len(self.messages):
            record: dict[str, Any] = {"instruction": turns[0].content, "output": turns[1].content}
        else:
            record = self.to_openai()
        if self.meta:
            record["meta"] = self.meta
        return record

    def to_openai(self) -> dict[str, Any]:
        return {"messages": [{"role": m.role, "content": m.content} for m in self.messages]}

    def to_sharegpt(self) -> dict[str, Any]:
        names = {"system": "system", "user": "human", "assistant": "gpt"}
        return {"conversations": [{"from": names[m.role], "value": m.content} for m in self.messages]}


@dataclass(frozen=True)
class LineError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(frozen=True)
class Dataset:
    path: Path
    examples: list[Example]
    errors: list[LineError]


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{what} is empty")
    return value


def _check_turns(messages: list[Message]) -> tuple[Message, ...]:
    body = messages[1:] if messages and messages[0].role == "system" else messages
    if not body:
        raise ValueError("the conversation has no user or assistant message")
    for i, message in enumerate(body):
        expected = "user" if i % 2 == 0 else "assistant"
        if message.role != expected:
            raise ValueError(
                f"message {i + 1 + len(messages) - len(body)} should be from the {expected}, "
                f"not the {message.role} (turns alternate user/assistant after an optional system)"
            )
    if body[-1].role != "assistant":
        raise ValueError("the conversation must end with an assistant answer (nothing to learn otherwise)")
    return tuple(messages)


def parse_record(obj: Any, line: int = 0) -> Example:
    """Turn one decoded JSON line into an Example; ValueError names what is wrong."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    meta = obj.get("meta") or {}
    if not isinstance(meta, dict):
        raise ValueError("'meta' must be an object")
    if "messages" in obj:
        raw = obj["messages"]
        if not isinstance(raw, list):
            raise ValueError("'messages' must be a list")
        messages = []
        for i, m in enumerate(raw, 1):
            if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant"):
                raise ValueError(f"messages[{i}] needs a role of system, user or assistant")
            messages.append(Message(m["role"], _text(m.get("content"), f"messages[{i}].content")))
        return Example(_check_turns(messages), "openai", line, meta)
    if "conversations" in obj:
        raw = obj["conversations"]
        if not isinstance(raw, list):
            raise ValueError("'conversations' must be a list")
        messages = []
        for i, m in enumerate(raw, 1):
            role = _SHAREGPT_ROLES.get(m.get("from")) if isinstance(m, dict) else None
            if role is None:
                raise ValueError(f"conversations[{i}] needs 'from' of human, gpt or system")
            messages.append(Message(role, _text(m.get("value"), f"conversations[{i}].value")))
        return Example(_check_turns(messages), "sharegpt", line, meta)
    if "instruction" in obj or "output" in obj:
        missing = [k for k in ("instruction", "output") if k not in obj]
        if missing:
            raise ValueError(f"'{missing[0]}' is missing")
        prompt = _text(obj["instruction"], "'instruction'")
        extra = obj.get("input")
        if extra is not None and not isinstance(extra, str):
            raise ValueError("'input' must be a string")
        if extra and extra.strip():
            prompt = f"{prompt}\n\n{extra}"
        messages = [Message("user", prompt), Message("assistant", _text(obj["output"], "'output'"))]
        return Example(tuple(messages), "alpaca", line, meta)
    raise ValueError("no 'instruction'/'output', 'conversations' or 'messages' field")


MAX_DEPTH = 32  # JSON nesting a line may have: the forms need 4; far deeper is hostile (and a RecursionError)
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(rb"[^\[\]{}]+")


def json_depth(raw: bytes) -> int:
    """How deeply the JSON text `raw` nests arrays and objects (brackets inside strings do not count)."""
    depth = deepest = 0
    for ch in _BRACKETS.sub(b"", _STRINGS.sub(b"", raw)):
        depth += 1 if ch in b"[{" else -1
        deepest = max(deepest, depth)
    return deepest


def split_lines(data: bytes) -> list[bytes]:
    """The lines of a JSONL file, each with its end: split on \\n only, so a CR inside a line stays content (and
    line numbers are the same in every tool that counts newlines); a \\r\\n ending is still a line end."""
    lines = data.split(b"\n")
    ends = [line + b"\n" for line in lines[:-1]]
    return ends + ([lines[-1]] if lines[-1] else [])


def decode_line(raw: bytes, number: int, path: Path) -> str:
    """One line as text; BadInput naming the line and the first byte that is not UTF-8 (the file needs saving
    again as UTF-8: guessing another encoding would silently change the data)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(
            f"{path}: line {number} is not UTF-8 text: byte {exc.start + 1} of the line is 0x{raw[exc.start]:02x} "
            f"({exc.reason})",
            hint="save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`); nothing was read from it",
        ) from None


def parse_line(raw: bytes, number: int, path: Path) -> Example | LineError | None:
    """One line of a JSONL file as an Example, the LineError saying why it is not one, or None when blank."""
    text = decode_line(raw.removesuffix(b"\n").removesuffix(b"\r"), number, path)
    if not text.strip():
        return None
    if json_depth(raw) > MAX_DEPTH:
        return LineError(number, f"JSON nested deeper than {MAX_DEPTH} levels (the accepted forms need 4)")
    try:
        return parse_record(json.loads(text), number)
    except json.JSONDecodeError as exc:
        return LineError(number, f"not valid JSON ({exc.msg} at column {exc.colno})")
    except ValueError as exc:
        return LineError(number, str(exc))


def iter_lines(path: Path) -> Iterator[tuple[int, Example | LineError]]:
    """Each non-blank line of a JSONL file as an Example or the LineError explaining why it is not one.

    Lines end at \\n only; BadInput (naming the line and byte) when the file is not UTF-8."""
    with path.open("rb") as f:
        for number, raw in enumerate(f, 1):  # binary files split on b"\\n" alone
            item = parse_line(raw, number, path)
            if item is not None:
                yield number, item


def read_dataset(path: Path) -> Dataset:
    """Read a whole JSONL file; NotFound if it does not exist. Bad lines are returned as errors, not raised."""
    if not path.is_file():
        raise NotFound(
            f"no training data at {path}",
            hint="generate it (`ftstudio generate`), or put your own JSONL there: one "
            '{"instruction": "…", "output": "…"} per line',
        )
    examples: list[Example] = []
    errors: list[LineError] = []
    for _, item in iter_lines(path):
        (errors if isinstance(item, LineError) else examples).append(item)
    return Dataset(path, examples, errors)


def repair_torn_tail(path: Path) -> int:
    """Cut an incomplete last line left by a crash mid-write; return the bytes removed (0 if the file is whole).

    Lines are written whole and newline-terminated, so a file that does not end in a newline was torn. A last line
    that is still a complete JSON object only lacks its newline, which is added instead.
    """
    if not path.exists() or path.stat().st_size == 0:
        return 0
    with path.open("rb+") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return 0
        # Find the start of the last line without reading the whole file.
        pos, tail = size, b""
        while pos > 0 and b"\n" not in tail:
            step = min(65536, pos)
            pos -= step
            f.seek(pos)
            tail = f.read(step) + tail
        cut = pos + tail.rfind(b"\n") + 1 if b"\n" in tail else 0
        f.seek(cut)
        last = f.read()
        try:
            json.loads(last)
        except ValueError:
            f.truncate(cut)
            f.flush()
            os.fsync(f.fileno())
            return size - cut
        f.write(b"\n")
        return 0


def append_records(path: Path, records: Iterable[dict[str, Any]]) -> int:
    """Append records as whole JSON lines (each one write, then fsync); return how many were written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    repair_torn_tail(path)
    count = 0
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        for record in records:
            os.write(fd, (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
            count += 1
        os.fsync(fd)
    finally:
        os.close(fd)
    return count


def rewrite_lines(path: Path, changes: dict[int, dict[str, Any] | None]) -> int:
    """Replace (a record) or delete (None) lines by their 1-based number; every other line is kept byte for byte.

    Bad lines are kept too: an edit never makes a line vanish that the user did not name. The file is replaced
    atomically. Returns how many lines changed; NotFound names a line number the file does not have.
    """
    from ftstudio.fsutil import atomic_write_bytes

    raw = split_lines(path.read_bytes()) if path.is_file() else []
    missing = sorted(n for n in changes if not 1 <= n <= len(raw))
    if missing:
        raise NotFound(f"{path} has no line {missing[0]} (it has {len(raw)} lines)", hint="reload the data and retry")
    out = []
    for number, line in enumerate(raw, 1):
        if number not in changes:
            out.append(line if line.endswith(b"\n") else line + b"\n")
        elif changes[number] is not None:
            out.append((json.dumps(changes[number], ensure_ascii=False) + "\n").encode("utf-8"))
    atomic_write_bytes(path, b"".join(out))
    return len(changes)
