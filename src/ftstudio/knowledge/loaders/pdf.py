"""PDF: the text layer of each page (pypdfium2), with page numbers, and bookmarks as headings when there are any."""

from __future__ import annotations

from pathlib import Path

from ftstudio.knowledge.document import LoadedDocument, Section, clean_text, clean_title
from ftstudio.knowledge.loaders.errors import LoadError


def load(path: Path, data: bytes) -> LoadedDocument:
    """Sections, one per page with text, under the heading path of the last bookmark at or before that page."""
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
        starts = _bookmarks(pdf)
        sections = []
        path_now: tuple[str, ...] = ()
        pages_with_text = 0
        for index in range(len(pdf)):
            page = pdf[index]
            try:
                textpage = page.get_textpage()
                text = clean_text(textpage.get_text_bounded())
                textpage.close()
            finally:
                page.close()
            path_now = starts.get(index, path_now)
            if text:
                pages_with_text += 1
                sections.append(Section(text, path_now, page=index + 1))
        if len(pdf) and not pages_with_text:
            raise LoadError(
                path,
                f"no text layer in any of its {len(pdf)} pages (a scan or images): it needs OCR",
                "run it through OCR first (e.g. `ocrmypdf in.pdf out.pdf`), then ingest the result",
            )
        return LoadedDocument("pdf", sections)
    finally:
        pdf.close()


def _bookmarks(pdf) -> dict[int, tuple[str, ...]]:
    """Page index → heading path of the last bookmark that starts on it (outline levels become the path)."""
    starts: dict[int, tuple[str, ...]] = {}
    stack: list[str] = []
    try:
        for mark in pdf.get_toc(max_depth=8):
            dest = mark.get_dest()
            index = dest.get_index() if dest is not None else None
            title = clean_title(mark.get_title() or "")
            del stack[mark.level :]
            stack.append(title)
            if index is not None and title:
                starts[index] = tuple(stack)
    except Exception:  # a broken outline must not cost the text; the pages still load without headings
        return {}
    return starts
