"""Plain text: UTF-8 (with or without BOM), UTF-16/32 with BOM, else Western single-byte for nearly-ASCII text, else a
legacy encoding detected; binary refused. The first line is the title when it looks like one."""

from __future__ import annotations

import codecs
import re
from pathlib import Path

from ftstudio.knowledge.document import LoadedDocument, Section, clean_text
from ftstudio.knowledge.loaders.errors import LoadError

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_PREFERRED = ("cp1252", "latin_1", "iso8859_15")
# Control bytes that never appear in text (tab, newlines, form feed and escape excepted).
_CONTROL = bytes(b for b in range(32) if b not in (9, 10, 12, 13, 27))
_HIGH = bytes(range(128, 256))
# Up to this share of bytes above 127 (or a few that are never side by side, as the bytes of a multi-byte
# character are), a text that is not UTF-8 is read as Western single-byte text (see below).
_NEARLY_ASCII = 0.1
_HIGH_PAIR = re.compile(rb"[\x80-\xff]{2}")
_UNDERLINE = re.compile(r"[=\-~*]{3,}[ \t]*(?:\n|$)")


def decode_text(path: Path, data: bytes) -> tuple[str, str]:
    """The text of `data` and the encoding it was read in: by its BOM, else UTF-8, else cp1252 (or Latin-1) for a
    nearly-ASCII file, else the encoding charset-normalizer detects.

    Raises LoadError for content that is not text at all (NUL bytes, many control bytes, nothing detected).
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding), encoding
            except UnicodeDecodeError as exc:
                raise LoadError(path, f"damaged {encoding.upper()} text ({exc.reason} at byte {exc.start})") from exc
    sample = data[:65536]
    if b"\x00" in sample or len(sample.translate(None, _CONTROL)) < 0.95 * len(sample):
        raise LoadError(path, "binary content, not text", "only plain text files can be ingested as .txt")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    # A few accented letters in English text: the detector would guess among multi-byte encodings (big5, cp850)
    # from a handful of bytes, while Western single-byte text is by far the likeliest ("Kämpf", not "K鄝pf").
    # cp1252 reads Latin-1's letters alike and also its quotes and dashes; bytes it leaves undefined mean Latin-1.
    high = len(data) - len(data.translate(None, _HIGH))
    if high <= _NEARLY_ASCII * len(data) or (high <= 16 and _HIGH_PAIR.search(data) is None):
        try:
            return data.decode("cp1252"), "cp1252"
        except UnicodeDecodeError:
            return data.decode("latin-1"), "latin-1"
    from charset_normalizer import from_bytes  # only for the rare non-UTF-8 file

    results = from_bytes(data)
    best = results.best()
    if best is None:
        raise LoadError(path, "not text in any encoding that could be detected", "save it as UTF-8 and try again")
    # Single-byte encodings often tie (cp1250 and cp1252 read most French alike); on a tie, take the commonest.
    for match in results:
        if match.encoding in _PREFERRED and (match.chaos, -match.coherence) <= (best.chaos, -best.coherence):
            return str(match), match.encoding
    return str(best), best.encoding


def load(path: Path, data: bytes) -> LoadedDocument:
    text, encoding = decode_text(path, data)
    text = clean_text(text)
    return LoadedDocument("text", [Section(text)], title_line(text), encoding=encoding)


def title_line(text: str) -> str | None:
    """The first line of `text` when it looks like a title: short, not a sentence, heading a first paragraph of at
    most three short lines (a title and its subtitle, "Version 3, 29 June 2007") or underlined."""
    paragraph = text.split("\n\n", 1)[0].split("\n")
    first = " ".join(paragraph[0].split())
    underlined = len(paragraph) > 1 and _UNDERLINE.match(paragraph[1]) is not None
    if not first or len(first) > 100 or not (underlined or (len(paragraph) <= 3 and max(map(len, paragraph)) <= 100)):
        return None
    if first[-1] in ".,;:" or not any(ch.isalpha() for ch in first):
        return None
    return first
