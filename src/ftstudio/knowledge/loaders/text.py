"""Plain text: UTF-8 (with or without BOM), UTF-16/32 with BOM, else a legacy encoding detected; binary refused."""

from __future__ import annotations

import codecs
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


def decode_text(path: Path, data: bytes) -> str:
    """The text of `data`: by its BOM, else UTF-8, else the single-byte encoding charset-normalizer detects.

    Raises LoadError for content that is not text at all (NUL bytes, many control bytes, nothing detected).
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError as exc:
                raise LoadError(path, f"damaged {encoding.upper()} text ({exc.reason} at byte {exc.start})") from exc
    sample = data[:65536]
    if b"\x00" in sample or len(sample.translate(None, _CONTROL)) < 0.95 * len(sample):
        raise LoadError(path, "binary content, not text", "only plain text files can be ingested as .txt")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes  # only for the rare non-UTF-8 file

    results = from_bytes(data)
    best = results.best()
    if best is None:
        raise LoadError(path, "not text in any encoding that could be detected", "save it as UTF-8 and try again")
    # Single-byte encodings often tie (cp1250 and cp1252 read most French alike); on a tie, take the commonest.
    for match in results:
        if match.encoding in _PREFERRED and (match.chaos, -match.coherence) <= (best.chaos, -best.coherence):
            return str(match)
    return str(best)


def load(path: Path, data: bytes) -> LoadedDocument:
    return LoadedDocument("text", [Section(clean_text(decode_text(path, data)))])
