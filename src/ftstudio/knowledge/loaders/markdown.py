"""Markdown: the heading hierarchy (ATX `#` and setext underlines), ignoring `#` lines inside code fences.

A line parser on regular expressions rather than a full CommonMark parser: headings are all the chunker needs, and
scanning with compiled patterns keeps ingest near the speed of reading the file. The text is kept as written.
"""

from __future__ import annotations

import re
from pathlib import Path

from ftstudio.knowledge.document import LoadedDocument, Section, clean_text, clean_title
from ftstudio.knowledge.language import normalise
from ftstudio.knowledge.loaders.text import decode_text

# The patterns run over "\n" + text + "\n" and start with a literal newline rather than ^ in MULTILINE mode:
# the regex engine then jumps between newlines instead of trying every position (several times faster).
# A match's start is then exactly the line's start in the original text.
_ATX = re.compile(r"\n {0,3}(#{1,6})(?:[ \t]+([^\n]*?))?(?:[ \t]+#+)?[ \t]*(?=\n)")
_SETEXT_UNDERLINE = re.compile(r"\n {0,3}(=+|-+)[ \t]*(?=\n)")
_FENCE = re.compile(r"\n {0,3}(`{3,}|~{3,})")
_NOT_A_HEADING_LINE = re.compile(r"^\s*(?:[-*+>|]|\d+[.)]\s|#|$)|^ {4}")


_FRONT_MATTER_FIELD = re.compile(r"^([A-Za-z_][\w-]*)[ \t]*:[ \t]*(.*?)[ \t]*$")


def load(path: Path, data: bytes) -> LoadedDocument:
    text, encoding = decode_text(path, data)
    meta, text = front_matter(clean_text(text))
    parts = list(sections(text))
    title = meta.get("title") or next((s.heading_path[0] for s in parts if s.heading_path), None)
    language = normalise(str(meta.get("lang") or meta.get("language") or "")) if meta else None
    return LoadedDocument(
        "markdown", parts, clean_title(str(title)) if title else None, encoding, meta, language=language
    )


def front_matter(text: str) -> tuple[dict, str]:
    """YAML front matter (`---` lines around it, at the very start) as metadata, and the text after it.

    Only its top-level `key: value` fields are read (quotes removed; nested or list values are kept as written):
    enough for the title, author and date that documents carry, without a YAML library.
    """
    if not text.startswith("---\n"):
        return {}, text
    end = text.find("\n---", 3)
    if end < 0 or text[end + 4 : end + 5] not in ("", "\n"):
        return {}, text
    meta = {}
    for line in text[4:end].split("\n"):
        m = _FRONT_MATTER_FIELD.match(line)
        if m and m.group(2):
            meta[m.group(1)] = m.group(2).strip("\"'")
    return meta, text[end + 4 :].lstrip("\n")


def _excluded_regions(text: str, padded: str) -> list[tuple[int, int]]:
    """Fenced code blocks: spans where a `#` line is not a heading."""
    regions = []
    opener = None
    for m in _FENCE.finditer(padded):
        fence = m.group(1)
        if opener is None:
            opener = (m.start(), fence)
        elif fence[0] == opener[1][0] and len(fence) >= len(opener[1]):
            line_end = text.find("\n", m.end() - 1)
            regions.append((opener[0], len(text) if line_end < 0 else line_end))
            opener = None
    if opener is not None:  # an unclosed fence runs to the end, as in CommonMark
        regions.append((opener[0], len(text)))
    return regions


def _inside(regions: list[tuple[int, int]], pos: int) -> bool:
    return any(a <= pos < b for a, b in regions)


def sections(text: str):
    """Yield a Section per heading (its heading line included), with the path of titles above it."""
    padded = "\n" + text + "\n"
    regions = _excluded_regions(text, padded)
    heads: list[tuple[int, int, str]] = []  # (start of the heading, level, title)
    for m in _ATX.finditer(padded):
        if m.group(2) is not None and m.group(2).strip() and not (regions and _inside(regions, m.start())):
            heads.append((m.start(), len(m.group(1)), m.group(2)))
    for m in _SETEXT_UNDERLINE.finditer(padded):
        line_start = text.rfind("\n", 0, max(0, m.start() - 1)) + 1
        if line_start >= m.start() or (regions and _inside(regions, m.start())):
            continue
        title = text[line_start : m.start() - 1]
        before = text[max(0, line_start - 2) : line_start]
        if _NOT_A_HEADING_LINE.match(title) or (line_start > 0 and before != "\n\n"):
            continue
        heads.append((line_start, 1 if m.group(1)[0] == "=" else 2, title))
    heads.sort()
    stack: list[tuple[int, str]] = []
    pos = 0
    for start, level, title in heads:
        if start > pos:
            yield Section(text[pos:start], tuple(t for _, t in stack))
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, clean_title(title)))
        pos = start
    if pos < len(text):
        yield Section(text[pos:], tuple(t for _, t in stack))
