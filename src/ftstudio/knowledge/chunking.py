"""Cutting a document into chunks within a token budget, following its structure. Pure: no I/O, no store.

The document's sections are joined into one text, measured once by the token counter, and cut by character
offsets. Headings are hard boundaries: a chunk never spans two heading paths (pages are soft: a chunk may run from
page 3 to 4). Within a heading, each chunk reaches as far as the budget allows and ends at the best boundary in
the last three quarters of that reach: a paragraph break, else a sentence end, else a line break, else a space.
Only a single "word" longer than the whole budget (a long URL, a base64 blob) is ever cut inside.

Overlap: the next chunk starts at the first sentence start (or line start) at most `overlap` tokens before the
previous chunk's end; when there is none that near, the chunk has no overlap rather than begin mid-sentence.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass

from ftstudio.knowledge.document import Section, clean_title
from ftstudio.knowledge.store import NewChunk
from ftstudio.knowledge.tokens import Measure, TokenCounter

# A sentence ends at . ! ? … (then closing quotes/brackets) before whitespace, or at a CJK full stop.
_SENTENCE_END = re.compile(r"[.!?…][\"'”’»)\]]*(?=\s)|[。！？]")
# Where a sentence starts: after a sentence end and spaces, or at a line start (lists, code, headings).
_SENTENCE_START = re.compile(r"(?:[.!?…][\"'”’»)\]]*[ \t]+|\n[ \t]*|[。！？])(?=\S)")
_SPACE = " \n\t"


@dataclass(frozen=True)
class _Group:
    start: int
    end: int
    heading_path: tuple[str, ...]
    page_offsets: tuple[int, ...]
    pages: tuple[int, ...]
    ocr: bool


def chunk_sections(
    sections: Iterable[Section], counter: TokenCounter, budget: int = 512, overlap: int = 64
) -> list[NewChunk]:
    """The chunks of one document, in order, each with its heading path, page range and token count."""
    if budget < 1 or not 0 <= overlap < budget:
        raise ValueError(f"need 0 <= overlap < budget, got budget={budget} overlap={overlap}")
    text, groups = _assemble(sections)
    if not text:
        return []
    measure = counter.prepare(text)
    chunks = []
    for group in groups:
        for start, end in split_span(text, group.start, group.end, measure, budget, overlap):
            page_start = page_end = None
            if group.pages:
                first = max(0, bisect_right(group.page_offsets, start) - 1)
                last = max(0, bisect_right(group.page_offsets, end - 1) - 1)
                page_start, page_end = group.pages[first], group.pages[last]
            chunks.append(
                NewChunk(
                    text[start:end], measure.count(start, end), group.heading_path, page_start, page_end, group.ocr
                )
            )
    return chunks


def _assemble(sections: Iterable[Section]) -> tuple[str, list[_Group]]:
    """Join the sections' text with blank lines; group consecutive sections that share a heading path.

    A group that is only a heading line (a chapter title followed by its first section, or a chain of headings with
    no text between them) joins the group after it, under that group's path: no chunk is a heading alone.
    """
    parts: list[str] = []
    pos = 0
    groups: list[dict] = []
    for section in sections:
        body = section.text.strip()
        if not body:
            continue
        if parts:
            parts.append("\n\n")
            pos += 2
        start, end = pos, pos + len(body)
        parts.append(body)
        pos = end
        cur = groups[-1] if groups else None
        path = tuple(section.heading_path)
        one_line = _heading_only(body, path)
        if cur is not None and cur["ocr"] == section.ocr and (path == cur["path"] or cur["one_line"]):
            cur["end"] = end
            cur["path"] = path
            cur["one_line"] = cur["one_line"] and one_line
        else:
            cur = {"start": start, "end": end, "path": path, "one_line": one_line, "offsets": [], "pages": []}
            cur["ocr"] = section.ocr
            groups.append(cur)
        if section.page is not None:
            cur["offsets"].append(start)
            cur["pages"].append(section.page)
    text = "".join(parts)
    return text, [
        _Group(g["start"], g["end"], g["path"], tuple(g["offsets"]), tuple(g["pages"]), g["ocr"]) for g in groups
    ]


def _heading_only(body: str, path: tuple[str, ...]) -> bool:
    """Whether a section's text is just its heading ("## Decimals", "CHAPTER\nONE\nABOUT THIS MANUAL")."""
    if not path or len(body) > 2 * len(path[-1]) + 40 or body.count("\n") > 2:
        return False
    return clean_title(body.lstrip("#")).casefold().endswith(path[-1].casefold())


def split_span(text: str, start: int, end: int, measure: Measure, budget: int, overlap: int) -> list[tuple[int, int]]:
    """(start, end) character spans of the chunks of text[start:end]: non-empty, stripped, within the budget."""
    spans: list[tuple[int, int]] = []
    s = fresh = _skip_space(text, start, end)  # fresh: where this chunk would start without overlap
    prev_end = s
    while s < end:
        lim = measure.limit(s, budget, end)
        if lim >= end:
            spans.append((s, _rstrip(text, s, end)))
            break
        e, nxt = _best_break(text, s, prev_end, lim)
        if e == lim and s < fresh and _inside_word(text, e):
            # The overlap left too little room for the next word: give up the overlap, not the word.
            s = fresh
            continue
        spans.append((s, e))
        prev_end = e
        following = fresh = _skip_space(text, nxt, end)
        if overlap and following < end:
            back = _overlap_start(text, measure, s, e, overlap)
            if back is not None:
                following = back
        s = following
    return spans


def _inside_word(text: str, i: int) -> bool:
    return 0 < i < len(text) and text[i] not in _SPACE and text[i - 1] not in _SPACE


def _skip_space(text: str, i: int, end: int) -> int:
    while i < end and text[i] in _SPACE:
        i += 1
    return i


def _rstrip(text: str, start: int, end: int) -> int:
    while end > start and text[end - 1] in _SPACE:
        end -= 1
    return end


def _best_break(text: str, s: int, floor: int, lim: int) -> tuple[int, int]:
    """Where to end a chunk that starts at `s` and may reach `lim`: (its end, where the text after it starts).

    Every break lies beyond `floor` (the previous chunk's end), so each chunk covers new text.
    """
    floor = max(s, floor)
    fill = max(floor + 1, floor + (lim - floor) // 4)
    for lo in (fill, floor + 1):
        for end, following in _breaks(text, lo, lim):
            end = _rstrip(text, s, end)
            if end > floor:
                return end, following
    return lim, lim  # one "word" longer than the budget: the only cut inside a word


def _breaks(text: str, lo: int, lim: int):
    """Candidate (end, following start) breaks in [lo, lim], best kind first: paragraph, sentence, line, space."""
    p = text.rfind("\n\n", lo, lim)
    if p >= lo:
        yield p, p + 2
    last = None
    for last in _SENTENCE_END.finditer(text, lo, lim):  # noqa: B007 (the last match is the one wanted)
        pass
    if last is not None:
        yield last.end(), last.end()
    p = text.rfind("\n", lo, lim)
    if p >= lo:
        yield p, p + 1
    p = text.rfind(" ", lo, lim + 1)  # a space right at `lim` ends a word exactly at the limit
    if p >= lo:
        yield p, p + 1


def _overlap_start(text: str, measure: Measure, s: int, e: int, overlap: int) -> int | None:
    """The first sentence or line start after `s` from which text up to `e` holds at most `overlap` tokens; None if
    there is none."""
    lo = max(s + 1, _back(measure, s, e, overlap))
    if lo >= e:
        return None
    if text[lo - 1] == "\n" and text[lo] not in _SPACE:
        return lo
    m = _SENTENCE_START.search(text, lo - 1, e)
    if m is None or m.end() >= e:
        return None
    return m.end()


def _back(measure: Measure, s: int, end: int, budget: int) -> int:
    """The smallest start in [s, end] with measure.count(start, end) <= budget (bisection on the measure)."""
    lo, hi = s, end
    if measure.count(lo, end) <= budget:
        return lo
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if measure.count(mid, end) <= budget:
            hi = mid
        else:
            lo = mid
    return hi
