"""What a loader yields: a document's text in sections, each with its heading path or page."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_TRAILING_SPACE = re.compile(r"[ \t\r\f\v]+\n")
_MANY_BLANK_LINES = re.compile(r"\n{3,}")


@dataclass(frozen=True)
class Section:
    """A run of text under one heading path (titles from outermost to innermost), or from one page."""

    text: str
    heading_path: tuple[str, ...] = ()
    page: int | None = None
    ocr: bool = False  # read by OCR from an image of the page


@dataclass
class LoadedDocument:
    """A whole document as its loader read it; `type` is the format's name (pdf, docx, epub, html, markdown, text)."""

    type: str
    sections: list[Section] = field(default_factory=list)
    title: str | None = None
    encoding: str | None = None  # the text encoding it was decoded from (text formats)
    meta: dict = field(default_factory=dict)  # front matter and the like
    notes: list[str] = field(default_factory=list)  # parts left out on purpose, said in the ingest result
    language: str | None = None  # the language the document declares (ISO 639-1), normalised; None if it says none


def clean_text(text: str) -> str:
    """Normalise line ends and blank lines: `\\r\\n` → `\\n`, no trailing blanks, at most one empty line in a row.

    The chunker relies on this: a paragraph break is exactly `\\n\\n`.
    """
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\x00" in text:
        text = text.replace("\x00", "")
    # The substitutions scan slowly; most text needs neither, and `in` finds out at memory speed.
    if " \n" in text or "\t\n" in text or "\f" in text or "\v" in text:
        text = _TRAILING_SPACE.sub("\n", text)
    if "\n\n\n" in text:
        text = _MANY_BLANK_LINES.sub("\n\n", text)
    return text.strip()


def clean_title(title: str) -> str:
    """A heading title on one line with single spaces (titles are joined with newlines in the store)."""
    return " ".join(title.split())
