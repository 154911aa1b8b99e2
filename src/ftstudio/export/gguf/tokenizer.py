"""The tokenizer in GGUF form, read from a model folder's `tokenizer.json`.

Two designs, as llama.cpp knows them:
- byte-level BPE (Llama 3, Qwen, SmolLM3, Granite, OLMo 2, Phi-4-mini): tokenizer model "gpt2" with its merges,
  and `tokenizer.ggml.pre` naming llama.cpp's rules for the tokenizer's own splitting steps
  (`ftstudio.families.pretokenizers`), so llama.cpp splits text exactly as the HF tokenizer does; an unknown
  split pattern is refused, quoted;
- SentencePiece-style BPE with byte fallback (Llama 2, Mistral, Phi-3, Gemma): tokenizer model "llama" with scores
  (a piece made by an earlier merge scores higher, which is the order HF's BPE merges in), BYTE tokens <0xXX>, and
  whether a "▁" is prepended (not for Gemma).
Special tokens are CONTROL, other added tokens USER_DEFINED; BOS/EOS/EOT/PAD/UNK ids and the add-BOS flag are
measured on the tokenizer itself.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf

from ftstudio.errors import BadInput
from ftstudio.export.chat import ChatFormat
from ftstudio.families import pretokenizers

_BYTE_TOKEN = re.compile(r"^<0x[0-9A-F]{2}>$")


@dataclass
class Vocab:
    model: str  # "gpt2" or "llama"
    pre: str | None
    tokens: list[str]
    types: list[int]
    scores: list[float] | None
    merges: list[str] | None
    special_ids: dict[str, int]  # bos, eos, eot, pad, unk
    add_bos: bool
    add_eos: bool
    add_space_prefix: bool | None
    chat_template: str | None
    specials_rstrip: bool  # the HF tokenizer eats whitespace after its special tokens (Phi-3's release does)


def read_vocab(folder: Path, vocab_size: int) -> Vocab:
    """The GGUF vocabulary of the model in `folder`, padded to the model's `vocab_size`."""
    from tokenizers import Tokenizer

    path = folder / "tokenizer.json"
    if not path.is_file():
        raise BadInput(f"{folder} has no tokenizer.json", hint="the GGUF exporter needs the model's fast tokenizer")
    spec = json.loads(path.read_text(encoding="utf-8"))
    model = spec["model"]
    if model.get("type") != "BPE":
        raise BadInput(f"{path}: tokenizer model {model.get('type')!r} is not supported (BPE only)")
    byte_level = _has_byte_level(spec.get("pre_tokenizer"))
    if not byte_level and not model.get("byte_fallback"):
        raise BadInput(f"{path}: a BPE tokenizer with neither byte-level pre-tokenizer nor byte fallback")

    added = {t["id"]: t for t in spec.get("added_tokens", [])}
    by_id = {i: t for t, i in model["vocab"].items()}
    by_id.update({i: t["content"] for i, t in added.items()})
    size = max(vocab_size, max(by_id) + 1)
    tokens, types = [], []
    unk_text = model.get("unk_token")
    for i in range(size):
        text = by_id.get(i)
        if text is None:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in added and text != unk_text:
            tokens.append(text)
            types.append(gguf.TokenType.CONTROL if added[i].get("special") else gguf.TokenType.USER_DEFINED)
        elif text == unk_text:
            tokens.append(text)
            types.append(gguf.TokenType.UNKNOWN)
        elif not byte_level and _BYTE_TOKEN.match(text):
            tokens.append(text)
            types.append(gguf.TokenType.BYTE)
        else:
            tokens.append(text)
            types.append(gguf.TokenType.NORMAL)

    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    scores = None
    if not byte_level:
        # SentencePiece merges the adjacent pair whose joined piece scores highest: rank order of HF's merges.
        rank: dict[str, int] = {}
        for r, merge in enumerate(merges):
            rank.setdefault(merge.replace(" ", ""), r)
        scores = [-float(rank[t]) if t in rank else 0.0 for t in tokens]

    tok = Tokenizer.from_str(path.read_text(encoding="utf-8"))
    config = _json(folder / "tokenizer_config.json")
    pre = _pre_name(spec, path, bool(config.get("clean_up_tokenization_spaces"))) if byte_level else None
    ids = {t: i for i, t in enumerate(tokens)}
    special_ids: dict[str, int] = {}
    for key in ("bos", "eos", "pad", "unk"):
        text = _token_text(config.get(f"{key}_token"))
        if text is not None and text in ids:
            special_ids[key] = ids[text]
    try:
        chat = ChatFormat.from_folder(folder)
    except BadInput:
        chat = None
    if chat is not None and chat.end_of_turn() in ids:
        special_ids["eot"] = ids[chat.end_of_turn()]
    plain = tok.encode("Hello", add_special_tokens=False).ids
    with_specials = tok.encode("Hello", add_special_tokens=True).ids
    add_bos = "bos" in special_ids and with_specials[:1] == [special_ids["bos"]] and plain[:1] != with_specials[:1]
    add_eos = "eos" in special_ids and with_specials[-1:] == [special_ids["eos"]] and plain[-1:] != with_specials[-1:]
    space_prefix = None if byte_level else tokens[plain[0]].startswith("▁")
    return Vocab(
        model="gpt2" if byte_level else "llama",
        pre=pre,
        tokens=tokens,
        types=[int(t) for t in types],
        scores=scores,
        merges=merges if byte_level else None,
        special_ids=special_ids,
        add_bos=add_bos,
        add_eos=add_eos,
        add_space_prefix=space_prefix,
        chat_template=chat.template if chat else None,
        specials_rstrip=any(t.get("rstrip") for t in added.values() if t.get("special")),
    )


def write_vocab(writer: gguf.GGUFWriter, vocab: Vocab) -> None:
    writer.add_tokenizer_model(vocab.model)
    if vocab.pre:
        writer.add_tokenizer_pre(vocab.pre)
    elif vocab.model == "llama":
        writer.add_tokenizer_pre("default")
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.types)
    if vocab.scores is not None:
        writer.add_token_scores(vocab.scores)
    if vocab.merges is not None:
        writer.add_token_merges(vocab.merges)
    setters = {
        "bos": writer.add_bos_token_id,
        "eos": writer.add_eos_token_id,
        "eot": writer.add_eot_token_id,
        "pad": writer.add_pad_token_id,
        "unk": writer.add_unk_token_id,
    }
    for key, token_id in vocab.special_ids.items():
        setters[key](token_id)
    writer.add_add_bos_token(vocab.add_bos)
    writer.add_add_eos_token(vocab.add_eos)
    if vocab.add_space_prefix is not None:
        writer.add_add_space_prefix(vocab.add_space_prefix)
    if vocab.chat_template:
        writer.add_chat_template(vocab.chat_template)


def _has_byte_level(pre: dict[str, Any] | None) -> bool:
    if not pre:
        return False
    if pre.get("type") == "ByteLevel":
        return True
    return any(_has_byte_level(p) for p in pre.get("pretokenizers", []))


def _pre_name(spec: dict[str, Any], path: Path, clean_up_spaces: bool) -> str:
    steps = pretokenizers.design(spec.get("pre_tokenizer"))
    ignore_merges = bool(spec["model"].get("ignore_merges"))
    found = pretokenizers.lookup(steps, ignore_merges, clean_up_spaces)
    if found is None:
        known = ", ".join(sorted({p.name for options in pretokenizers.KNOWN.values() for p in options}))
        rule = " with ignore_merges" if ignore_merges else ""
        raise BadInput(
            f"{path}: the byte-level pre-tokenizer splits text with a pattern llama.cpp has no rules for{rule}: "
            + " then ".join(repr(p) for p in pretokenizers.patterns(steps))
            + f" (known to llama.cpp: {known})",
            hint="export with --format merged; written as GGUF, llama.cpp would split text differently from the "
            "model's own tokenizer",
        )
    return found.name


def _token_text(value: Any) -> str | None:
    return value.get("content") if isinstance(value, dict) else value


def _json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
