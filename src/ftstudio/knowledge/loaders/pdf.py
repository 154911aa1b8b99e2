"""PDF: the text layer of each page (pypdfium2), cleaned of what is print furniture rather than text.

- Hyphenation: PDFium marks a hyphen at a line end with U+0002 and joins the lines; the word is joined again
  ("dis-tribution" → "distribution"), or keeps its hyphen before a capital ("US-ASCII"). Other control characters
  are removed.
- Running headers and footers, with or without a page number: the first and last lines of each page are placed by
  their height on the page. A row (the same height, at the top or at the bottom) where most lines repeat text
  that other pages have in that row (digits aside) is print furniture, and its repeated lines are left out: a
  book title, or a chapter title over the pages of its chapter. So is a line standing at the same height on at
  least a fifth of the pages, and an edge line carrying the page number (a number that differs from the page's
  index by the same offset on many pages, as in "2.5. Priorities 11"). Content is kept: the body's first row
  holds different text on most pages, so a label or code line that starts a few pages stays, and so does the
  title on the title page (it stands at another height than the running title).
- Contents and index pages (most lines ending in page numbers, dot leaders) are left out and named in the notes;
  the bookmarks are the structure.
- Footnote marks set smaller after a word ("areas¹" in print, "areas1" in the text layer, which also hid the word
  from search) are separated: "areas [1]".
- Bookmarks (the outline) become the heading path, each from where it points on its page, so text above a
  section's heading stays under the section before.
- Pages with no text layer but images are read by OCR when Tesseract is installed (marked OCR in their location);
  without it they are named in the notes, with how to enable OCR.
"""

from __future__ import annotations

import ctypes
import re
from collections import Counter, defaultdict
from pathlib import Path

from ftstudio.knowledge.document import LoadedDocument, Section, clean_text, clean_title
from ftstudio.knowledge.language import normalise
from ftstudio.knowledge.loaders import ocr
from ftstudio.knowledge.loaders.errors import LoadError
from ftstudio.knowledge.loaders.text import title_line

_SOFT_HYPHEN_JOIN = re.compile(r"\x02[\r\n]*(?=[a-z])")
_SOFT_HYPHEN = re.compile(r"\x02[\r\n]*")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f\ufffe\uffff]")
_DIGITS = re.compile(r"\d+")
_EDGE_NUMBER = re.compile(r"^(\d{1,4})\s|\s(\d{1,4})$|^(\d{1,4})$")
_BARE_PAGE_NUMBER = re.compile(r"^(?:\d{1,4}|[ivxlc]{1,6}|- ?\d{1,4} ?-|page \d{1,4}(?: of \d{1,4})?)$", re.I)
# A line of a contents or index page: an entry ending in page numbers ("Scope . . . . 3", "signaling, 91, 93").
_REFERENCE_LINE = re.compile(r"(?:(?:\. ?){3,}\s*|\s|,\s*)(\d{1,4})(?:\s*[-–]\s*\d{1,4})?(?:,\s*\d{1,4})*$")
_DOT_LEADER = re.compile(r"(?:\. ?){3,}\s*\d+$")
# A word, maybe a closing punctuation mark, then one or two digits: a footnote mark if the digits are set smaller.
_MARK_CANDIDATE = re.compile(r"([^\W\d_]+)([.,;:)]?)(\d{1,2})(?=\W|$)")
_MARK_SIZE = 0.8  # a mark's font size is at most this share of the word's
_LIST_TITLES = {"contents", "table of contents", "index", "inhalt", "inhaltsverzeichnis", "table des matières"}
EDGE = 2  # lines at the top and at the bottom of a page that may be running headers or footers
MIN_RUNNING = 3  # a row of running lines holds at least this many pages' lines...
ROW_SHARE = 0.5  # ...and at least this share of them repeat text other pages have in the row
RUNNING_SHARE = 0.2  # a line at the same height on at least this share of the pages with text is running too
_EDGE_CHARS = 400  # characters read from each end of a page to place its edge lines


def load(path: Path, data: bytes) -> LoadedDocument:
    """Sections, one per page with text (more where a bookmark starts inside a page), under the bookmarks' path."""
    import pypdfium2 as pdfium

    if not data[:1024].lstrip().startswith(b"%PDF-") and b"%PDF-" not in data[:1024]:
        raise LoadError(path, "not a PDF (no %PDF- header)", "check the file: it may be another format renamed")
    # PDFium rebuilds a damaged cross-reference table silently, so a cut-off file would load with pages missing;
    # every complete PDF ends with %%EOF, so its absence means the file was cut short.
    if b"%%EOF" not in data[-2048:]:
        raise LoadError(path, "truncated PDF (no %%EOF end marker)", "copy or download the file again")
    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise LoadError(
                path, "encrypted PDF (it needs a password)", "save an unprotected copy and ingest that"
            ) from exc
        raise LoadError(path, f"damaged PDF ({exc})", "open and re-save it in a PDF viewer") from exc
    try:
        return _read(path, pdf)
    finally:
        pdf.close()


def _read(path: Path, pdf) -> LoadedDocument:
    marks = _bookmarks(pdf)
    pages: list[list[tuple[tuple[str, ...] | None, str]]] = []  # per page: (heading path or None, text) bands
    image_only: list[int] = []
    path_now: tuple[str, ...] = ()
    placed: list[tuple[list, list]] = []  # per page: (top, bottom) edge lines as (key, height)
    for index in range(len(pdf)):
        page = pdf[index]
        try:
            textpage = page.get_textpage()
            try:
                bands = _bands(page, textpage, marks.get(index, []))
                placed.append(_placed_edges(textpage))
            finally:
                textpage.close()
            if not any(text for _, text in bands) and _has_graphics(page):
                image_only.append(index)
        finally:
            page.close()
        pages.append(bands)
    with_text = sum(1 for bands in pages if any(text for _, text in bands))
    running = _running_lines(pages, placed, with_text)
    stripped = [_strip_running(bands, running, index) for index, bands in enumerate(pages)]
    lists = _list_pages(pages, stripped)
    sections: list[Section] = []
    for index, bands in enumerate(stripped):
        if index in lists:
            path_now = next((p for p, _ in reversed(bands) if p is not None), path_now)
            continue
        for heading, text in bands:
            path_now = heading if heading is not None else path_now
            if text:
                sections.append(Section(text, path_now, page=index + 1))
    notes = []
    if lists:
        notes.append(f"left out {len(lists)} contents or index pages ({_page_list(sorted(lists))})")
    if image_only:
        read = ocr.available()
        if read:
            for index in image_only:
                text = _ocr_page(pdf, index)
                if text:
                    heading = _path_at(marks, index)
                    sections.append(Section(text, heading, page=index + 1, ocr=True))
            sections.sort(key=lambda s: s.page or 0)
            notes.append(f"read {len(image_only)} image-only pages by OCR ({_page_list(image_only)})")
        elif with_text:
            notes.append(
                f"{len(image_only)} pages are images only and were not read ({_page_list(image_only)}); "
                + ocr.HOW_TO_ENABLE
            )
    if len(pdf) and not sections:
        if not image_only:
            raise LoadError(path, f"no text in any of its {len(pdf)} pages")
        if not ocr.available():
            raise LoadError(
                path,
                f"no text layer in any of its {len(pdf)} pages (a scan or images): it needs OCR",
                ocr.HOW_TO_ENABLE,
            )
        raise LoadError(
            path,
            f"no text layer in any of its {len(pdf)} pages, and OCR read no text in them",
            "check that the pages hold legible text; for other languages set FTSTUDIO_OCR_LANG (e.g. deu)",
        )
    return LoadedDocument("pdf", sections, _title(pdf, marks, sections), notes=notes, language=_language(pdf))


def _clean(text: str) -> str:
    if "\x02" in text:
        text = _SOFT_HYPHEN.sub("-", _SOFT_HYPHEN_JOIN.sub("", text))
    return clean_text(_CONTROL.sub("", text))


def _bands(page, textpage, marks: list[tuple[float | None, tuple[str, ...]]]):
    """The page's text in bands from top to bottom: (None, text above the first bookmark), then (path, text) from
    each bookmark that starts on this page down to the next."""
    if not marks:
        return _separate_marks(textpage, [(None, _clean(textpage.get_text_bounded()))])
    width, height = page.get_size()
    bands = []
    top = height
    heading: tuple[str, ...] | None = None
    for y, mark_path in sorted(marks, key=lambda m: -(m[0] if m[0] is not None else height)):
        y = height if y is None else min(y, height)
        if y < top:
            bands.append((heading, _clean(textpage.get_text_bounded(0, y, width, top))))
            top = y
        heading = mark_path
    bands.append((heading, _clean(textpage.get_text_bounded(0, 0, width, top))))
    return _separate_marks(textpage, bands)


def _separate_marks(textpage, bands):
    """The bands with footnote marks glued to words ("areas1") separated ("areas [1]"), judged by font size."""
    if not any(_MARK_CANDIDATE.search(text) for _, text in bands):
        return bands
    import pypdfium2.raw as pdfium_c

    full = textpage.get_text_range()  # one character per index, as PDFium's per-character calls count them
    if len(full) != textpage.count_chars():
        return bands
    glued = set()
    for m in _MARK_CANDIDATE.finditer(full):
        mark = pdfium_c.FPDFText_GetFontSize(textpage.raw, m.start(3))
        word = pdfium_c.FPDFText_GetFontSize(textpage.raw, m.end(1) - 1)
        if 0 < mark <= _MARK_SIZE * word:
            glued.add(m.group(0))
    if not glued:
        return bands
    pattern = re.compile(
        r"(?<![^\W\d_])(" + "|".join(map(re.escape, sorted(glued, key=len, reverse=True))) + r")(?!\d)"
    )

    def separate(m: re.Match) -> str:
        word, punctuation, digits = _MARK_CANDIDATE.fullmatch(m.group(1)).groups()
        return f"{word}{punctuation} [{digits}]"

    return [(heading, pattern.sub(separate, text)) for heading, text in bands]


def _edges(lines: list[str]) -> list[str]:
    return lines[:EDGE] + lines[EDGE:][-EDGE:]


def _page_lines(bands) -> list[str]:
    return [line for _, text in bands for line in text.split("\n") if line.strip()]


def _key(line: str) -> str:
    return _DIGITS.sub("#", " ".join(line.split()).casefold())


def _placed_edges(textpage) -> tuple[list[tuple[str, int | None]], list[tuple[str, int | None]]]:
    """The page's first and last EDGE lines (in reading order, from the ends), each as (key, baseline height in
    points, or None where PDFium's character index cannot be matched to the text)."""
    count = textpage.count_chars()
    if count <= 0:
        return [], []
    head = textpage.get_text_range(0, min(count, _EDGE_CHARS))
    start = max(0, count - _EDGE_CHARS)
    tail = textpage.get_text_range(start, count - start)
    top = [(_key(_CONTROL.sub("", t)), _height(textpage, i, t)) for i, t in _lines(head)][:EDGE]
    bottom = [(_key(_CONTROL.sub("", t)), _height(textpage, start + i, t)) for i, t in _lines(tail)][-EDGE:][::-1]
    return top, bottom


def _lines(text: str) -> list[tuple[int, str]]:
    return [(m.start(), m.group()) for m in re.finditer(r"[^\r\n]*\S[^\r\n]*", text)]


def _height(textpage, index: int, line: str) -> int | None:
    import pypdfium2.raw as pdfium_c

    index += len(line) - len(line.lstrip())
    # The text PDFium returns can hold more or fewer characters than it counts (a ligature, a dropped control
    # character); a height is only trusted where the character at the index is the one the text has there.
    if chr(pdfium_c.FPDFText_GetUnicode(textpage.raw, index)) != line.lstrip()[:1]:
        return None
    x, y = ctypes.c_double(), ctypes.c_double()
    if not pdfium_c.FPDFText_GetCharOrigin(textpage.raw, index, ctypes.byref(x), ctypes.byref(y)):
        return None
    return round(y.value)


def _running_lines(pages, placed, with_text: int):
    """Per page, the keys of its running lines at the top and at the bottom (see the module docstring), and the
    offset between printed page numbers and page indexes."""
    need = max(MIN_RUNNING, RUNNING_SHARE * with_text)
    rows: dict[tuple[str, int | None], Counter[str]] = defaultdict(Counter)  # (side, height) -> key -> pages
    for top, bottom in placed:
        for side, lines in (("top", top), ("bottom", bottom)):
            for key, y in set(lines):
                rows[side, y][key] += 1
    running: dict[tuple[str, int | None], set[str]] = {}
    for row, keys in rows.items():
        repeated = {k for k, n in keys.items() if n >= 2}
        furniture = row[1] is not None and sum(keys.values()) >= MIN_RUNNING
        if furniture and sum(keys[k] for k in repeated) >= ROW_SHARE * sum(keys.values()):
            running[row] = repeated
        else:
            running[row] = {k for k, n in keys.items() if n >= need}
    strip = []
    for top, bottom in placed:
        strip.append(tuple(
            Counter(key for key, y in lines if key in running[side, y])
            for side, lines in (("top", top), ("bottom", bottom))
        ))  # fmt: skip
    offsets: Counter[int] = Counter()
    for index, bands in enumerate(pages):
        found = set()
        for line in _edges(_page_lines(bands)):
            m = _EDGE_NUMBER.search(line.strip())
            if m:
                found.add(index + 1 - int(next(g for g in m.groups() if g)))
        offsets.update(found)
    offset, count = offsets.most_common(1)[0] if offsets else (None, 0)
    return strip, (offset if count >= need else None)


def _is_running(line: str, keys: Counter[str], offset: int | None, index: int) -> bool:
    line = line.strip()
    if keys[_key(line)] > 0:
        keys[_key(line)] -= 1  # a running line is left out once per edge: a heading under it that says the same stays
        return True
    if _BARE_PAGE_NUMBER.match(line):
        return True
    m = _EDGE_NUMBER.search(line) if offset is not None else None
    return bool(m) and index + 1 - int(next(g for g in m.groups() if g)) == offset


def _strip_running(bands, running, index: int):
    """The page's bands without running lines among its first and last EDGE lines."""
    strip, offset = running
    bands = [[heading, text.split("\n")] for heading, text in bands]
    for from_end, keys in ((False, Counter(strip[index][0])), (True, Counter(strip[index][1]))):
        seen = 0
        for band in reversed(bands) if from_end else bands:
            lines = band[1]
            while lines and seen < EDGE:
                i = -1 if from_end else 0
                if not lines[i].strip():
                    lines.pop(i)
                    continue
                seen += 1
                if not _is_running(lines[i], keys, offset, index):
                    seen = EDGE
                    break
                lines.pop(i)
            if seen >= EDGE:
                break
    return [(heading, clean_text("\n".join(lines))) for heading, lines in bands]


def _list_pages(pages, stripped) -> set[int]:
    """Pages that are a table of contents or an index: most lines (running lines aside) end in page numbers, or
    a good part of them do under a "Contents" or "Index" title (which may itself be the running header)."""
    found = set()
    for index, (bands, kept) in enumerate(zip(pages, stripped, strict=True)):
        lines = _page_lines(kept)
        if len(lines) < 3:
            continue
        numbers = [int(m.group(1)) for line in lines if (m := _REFERENCE_LINE.search(line.strip()))]
        titled = any(line.strip().casefold() in _LIST_TITLES for line in _edges(_page_lines(bands)))
        # Untitled, a contents page still shows itself by dot leaders or by page numbers that only go up (a table
        # of figures whose lines end in numbers does neither).
        rising = sum(1 for a, b in zip(numbers, numbers[1:], strict=False) if a <= b) >= 0.8 * (len(numbers) - 1)
        leaders = sum(1 for line in lines if _DOT_LEADER.search(line)) >= 3
        if (len(numbers) >= 0.5 * len(lines) and (rising or leaders)) or (titled and len(numbers) >= 0.25 * len(lines)):
            found.add(index)
    return found


def _page_list(indexes: list[int]) -> str:
    """1-based page numbers, runs shortened: "3-6, 190"."""
    runs: list[list[int]] = []
    for i in indexes:
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ", ".join(f"{a + 1}" if a == b else f"{a + 1}-{b + 1}" for a, b in runs)


def _has_graphics(page) -> bool:
    """Whether a page without text draws anything (a scanned image, or text drawn as shapes): OCR can read it."""
    return any(True for _ in page.get_objects(max_depth=1))


def _ocr_page(pdf, index: int) -> str:
    page = pdf[index]
    try:
        # 300 dpi, grey: what Tesseract reads best, at a quarter of the memory of colour.
        image = page.render(scale=300 / 72, grayscale=True).to_pil()
    finally:
        page.close()
    return clean_text(_CONTROL.sub("", ocr.image_to_text(image)))


def _path_at(marks: dict[int, list], index: int) -> tuple[str, ...]:
    for i in range(index, -1, -1):
        if marks.get(i):
            return marks[i][-1][1]
    return ()


def _title(pdf, marks, sections: list[Section]) -> str | None:
    try:
        title = clean_title(pdf.get_metadata_dict().get("Title") or "")
    except Exception:  # unreadable metadata must not cost the text
        title = ""
    if title:
        return title
    first = min(marks) if marks else None
    if first is not None and marks[first]:
        return marks[first][0][1][0]
    return title_line(sections[0].text) if sections else None


def _language(pdf) -> str | None:
    """The document catalog's /Lang (the language a tagged PDF declares), normalised."""
    import pypdfium2.raw as pdfium_c

    size = pdfium_c.FPDFCatalog_GetLanguage(pdf.raw, None, 0)  # bytes of UTF-16LE, with the ending NUL
    if size <= 2 or size > 200:
        return None
    buffer = ctypes.create_string_buffer(size)
    pdfium_c.FPDFCatalog_GetLanguage(pdf.raw, buffer, size)
    return normalise(buffer.raw[: size - 2].decode("utf-16-le", errors="replace"))


def _bookmarks(pdf) -> dict[int, list[tuple[float | None, tuple[str, ...]]]]:
    """Page index → the bookmarks that start on it: (their height on the page or None, heading path)."""
    starts: dict[int, list[tuple[float | None, tuple[str, ...]]]] = {}
    stack: list[str] = []
    try:
        for mark in pdf.get_toc(max_depth=8):
            dest = mark.get_dest()
            index = dest.get_index() if dest is not None else None
            title = clean_title(mark.get_title() or "")
            del stack[mark.level :]
            stack.append(title)
            if index is None or not title:
                continue
            y = None
            mode, view = dest.get_view()
            if mode == 1 and len(view) >= 2 and view[1]:  # XYZ: left, top, zoom
                y = float(view[1])
            starts.setdefault(index, []).append((y, tuple(stack)))
    except Exception:  # a broken outline must not cost the text; the pages still load without headings
        return {}
    return starts
