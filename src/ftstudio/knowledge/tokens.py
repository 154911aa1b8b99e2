"""Token counters: how the chunker measures text against its budget.

Two kinds, one interface. A counter `prepare`s a whole document once and returns a `Measure` that answers, for any
character span of it, how many tokens it holds (`count`) and how far a span may reach within a budget (`limit`).

- `TokenizerCounter`: the base model's own tokenizer (a `tokenizer.json` read by HF `tokenizers`). The document is
  encoded ONCE; spans are measured by the tokens' character offsets, never by re-encoding candidate chunks.
- `EstimateCounter`: a fast offline estimate for when no tokenizer is on this machine: one token per 4 characters
  of ASCII text; characters outside ASCII weigh more (UTF-8 bytes × 2 − characters, over 4), so Cyrillic counts
  0.75 and CJK 1.25 tokens a character, which errs on the safe side of real BPE tokenizers.

`resolve_counter` picks one for a project: an explicit setting, else the base model's tokenizer when it is
available locally (a folder, or the Hugging Face cache), else the estimate.
"""

from __future__ import annotations

import os
from bisect import bisect_left, bisect_right
from pathlib import Path
from typing import Protocol

from ftstudio.errors import BadInput

ESTIMATE_NAME = "estimate:chars/4-v1"


class Measure(Protocol):
    def count(self, start: int, end: int) -> int:
        """Tokens in text[start:end]."""

    def limit(self, start: int, budget: int, end: int) -> int:
        """The largest position p <= end (p > start) with count(start, p) <= budget, as near as the counter can."""


class TokenCounter(Protocol):
    name: str

    def prepare(self, text: str) -> Measure: ...


class _AsciiEstimate:
    __slots__ = ()

    def count(self, start: int, end: int) -> int:
        return (end - start + 3) // 4

    def limit(self, start: int, budget: int, end: int) -> int:
        return min(end, start + budget * 4)


class _UnicodeEstimate:
    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text

    def count(self, start: int, end: int) -> int:
        piece = self.text[start:end]
        return (2 * len(piece.encode("utf-8", "surrogatepass")) - len(piece) + 3) // 4

    def limit(self, start: int, budget: int, end: int) -> int:
        stop = min(end, start + budget * 4)
        while stop > start + 1:
            n = self.count(start, stop)
            if n <= budget:
                return stop
            stop = start + max(1, (stop - start) * budget // n - 1)
        return start + 1


_ASCII = _AsciiEstimate()


class EstimateCounter:
    """The offline estimate (see the module docstring); its name is stored with each document."""

    name = ESTIMATE_NAME

    def prepare(self, text: str) -> Measure:
        return _ASCII if text.isascii() else _UnicodeEstimate(text)

    def count(self, text: str) -> int:
        return self.prepare(text).count(0, len(text))


class _OffsetsMeasure:
    __slots__ = ("starts", "ends")

    def __init__(self, offsets: list[tuple[int, int]]):
        self.starts = [a for a, _ in offsets]
        self.ends = [b for _, b in offsets]

    def count(self, start: int, end: int) -> int:
        # Tokens overlapping the span: a token that straddles a boundary counts on both sides, as it would if the
        # chunk were encoded alone.
        return max(0, bisect_left(self.starts, end) - bisect_right(self.ends, start))

    def limit(self, start: int, budget: int, end: int) -> int:
        first = bisect_right(self.ends, start)
        stop_token = first + budget
        if stop_token >= len(self.starts):
            return end
        return max(start + 1, min(end, self.starts[stop_token]))


class TokenizerCounter:
    """A real tokenizer from a `tokenizer.json`; special tokens are not added (chunks are not whole prompts)."""

    def __init__(self, tokenizer_file: Path, name: str | None = None):
        from tokenizers import Tokenizer  # Rust extension: loaded only when a real tokenizer is used

        self.path = Path(tokenizer_file)
        try:
            self._tok = Tokenizer.from_file(str(self.path))
        except Exception as exc:  # tokenizers raises a bare Exception on a bad file
            raise BadInput(
                f"{self.path}: not a usable tokenizer.json ({exc})",
                hint="point the knowledge tokenizer setting at a folder holding a valid tokenizer.json, or 'estimate'",
            ) from exc
        self.name = name or f"tokenizer:{self.path.parent.name or self.path.name}"

    def prepare(self, text: str) -> Measure:
        return _OffsetsMeasure(self._tok.encode(text, add_special_tokens=False).offsets)

    def count(self, text: str) -> int:
        return len(self._tok.encode(text, add_special_tokens=False).ids)


def _hub_cache_tokenizer(model_id: str) -> Path | None:
    """tokenizer.json of a hub model already in the local Hugging Face cache, found without importing the hub."""
    cache = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME") or os.path.join(Path.home(), ".cache", "huggingface"), "hub"
    )
    snapshots = Path(cache) / ("models--" + model_id.replace("/", "--")) / "snapshots"
    if not snapshots.is_dir():
        return None
    candidates = sorted(snapshots.glob("*/tokenizer.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    return candidates[0] if candidates else None


def resolve_counter(setting: str = "auto", base_model: str | None = None) -> TokenCounter:
    """The token counter for `setting`: 'estimate', 'auto', or a tokenizer.json / a folder holding one.

    'auto' uses the base model's tokenizer when it is available locally (a folder with tokenizer.json, or a hub id
    already in the Hugging Face cache), else the estimate: nothing is ever downloaded to count tokens.
    """
    if setting == "estimate":
        return EstimateCounter()
    if setting == "auto":
        if not base_model:
            return EstimateCounter()
        local = Path(base_model).expanduser()
        if (local / "tokenizer.json").is_file():
            return TokenizerCounter(local / "tokenizer.json", name=f"tokenizer:{base_model}")
        cached = None if local.exists() else _hub_cache_tokenizer(base_model)
        return TokenizerCounter(cached, name=f"tokenizer:{base_model}") if cached else EstimateCounter()
    path = Path(setting).expanduser()
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.is_file():
        raise BadInput(
            f"knowledge.tokenizer: {setting!r} is neither 'auto', 'estimate' nor a tokenizer.json file or folder",
            hint="use 'auto' (the base model's tokenizer when available locally), 'estimate', or a local path",
        )
    return TokenizerCounter(path, name=f"tokenizer:{setting}")
