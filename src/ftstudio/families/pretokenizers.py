"""Byte-level BPE pre-tokenizers: a `tokenizer.json`'s own splitting steps → the name llama.cpp knows them by.

llama.cpp does not run the HF pre-tokenizer; it picks its own splitting rules by the name in `tokenizer.ggml.pre`
(`llama-vocab.cpp`). So the name must be the one whose rules split text exactly as the model's tokenizer does. The
regexes here are the ones the families publish in their `tokenizer.json` (llama.cpp quotes each beside its own
adaptation). A pattern not listed is refused: written under another name it would tokenize differently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LLAMA3 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"  # noqa: E501
QWEN2 = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"  # noqa: E501
)
QWEN35 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"  # noqa: E501
GPT4O = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
TEKKEN = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"
    r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# A design is the tuple of splitting steps: ("split", regex), ("digits", individual), ("bytelevel", own GPT-2 regex).
Design = tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class PreTokenizer:
    name: str  # llama.cpp's tokenizer.ggml.pre
    ignore_merges: bool  # what llama.cpp does under that name: take a word found whole in the vocabulary as it is
    clean_spaces: bool = True  # llama.cpp's detokenizer removes spaces before punctuation under that name


def _regex(pattern: str) -> Design:
    return (("split", pattern), ("bytelevel", False))


_STARCODER = (("digits", True), ("bytelevel", True))
# (design, ignore_merges of the HF BPE model) → llama.cpp's pre-tokenizer; several names share rules, and those are
# told apart by what else llama.cpp does with them (ignore_merges, detokenizer clean-up).
KNOWN: dict[tuple[Design, bool], tuple[PreTokenizer, ...]] = {
    (_regex(LLAMA3), True): (PreTokenizer("llama-bpe", True),),  # Llama 3, SmolLM3
    (_regex(LLAMA3), False): (PreTokenizer("dbrx", False),),  # cl100k: OLMo 2, DBRX
    (_regex(QWEN2), False): (PreTokenizer("qwen2", False, clean_spaces=False),),  # Qwen 2, 2.5, 3
    (_regex(QWEN35), False): (PreTokenizer("qwen35", False, clean_spaces=False),),
    (_regex(GPT4O), False): (PreTokenizer("gpt-4o", False, clean_spaces=False),),  # o200k: Phi-4-mini
    (_regex(TEKKEN), True): (PreTokenizer("tekken", True, clean_spaces=False),),  # Mistral Nemo, Ministral
    ((("bytelevel", True),), False): (PreTokenizer("gpt-2", False),),  # GPT-2's own
    (_STARCODER, False): (PreTokenizer("refact", False), PreTokenizer("smollm", False, clean_spaces=False)),
}


def design(pre_tokenizer: dict[str, Any] | None) -> Design:
    """The splitting steps of a tokenizer.json `pre_tokenizer` section, in order."""
    if not pre_tokenizer:
        return ()
    steps = pre_tokenizer.get("pretokenizers") if pre_tokenizer.get("type") == "Sequence" else [pre_tokenizer]
    out: list[tuple[str, Any]] = []
    for step in steps or []:
        kind = step.get("type")
        if kind == "Split":
            pattern = step.get("pattern") or {}
            out.append(("split", pattern.get("Regex", pattern.get("String"))))
        elif kind == "Digits":
            out.append(("digits", bool(step.get("individual_digits"))))
        elif kind == "ByteLevel":
            out.append(("bytelevel", bool(step.get("use_regex", True))))
        else:
            out.append((str(kind), None))
    return tuple(out)


def lookup(steps: Design, ignore_merges: bool, clean_up_spaces: bool) -> PreTokenizer | None:
    """llama.cpp's pre-tokenizer that splits as `steps` do, or None when there is none."""
    found = KNOWN.get((steps, ignore_merges))
    if not found:
        return None
    return next((p for p in found if p.clean_spaces == clean_up_spaces), found[0])


def patterns(steps: Design) -> list[str]:
    """The split regexes of a design, for an error message."""
    return [str(value) for kind, value in steps if kind == "split"] or [repr(steps)]
