"""Word (.docx): paragraphs in order, heading styles as the heading path, list items marked, tables as text rows."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

from ftstudio.knowledge import safe_read
from ftstudio.knowledge.document import LoadedDocument, Section, clean_text, clean_title
from ftstudio.knowledge.language import normalise
from ftstudio.knowledge.loaders.errors import LoadError

_HEADING_STYLE = re.compile(r"^heading\s*(\d)$", re.I)
# A web page saved as DOCX keeps the permalink sign after each heading (Sphinx's "¶") and its contents list.
_PERMALINK = re.compile(r"\s*[¶§]$")
_CONTENTS = {"contents", "table of contents"}


def load(path: Path, data: bytes) -> LoadedDocument:
    import docx
    from docx.opc.exceptions import PackageNotFoundError
    from docx.oxml.ns import qn
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    if not zipfile.is_zipfile(io.BytesIO(data)):
        hint = "an old binary .doc? save it as .docx" if data[:4] == b"\xd0\xcf\x11\xe0" else "it may be damaged"
        raise LoadError(path, "not a valid DOCX (not a zip archive)", hint)
    try:
        # python-docx reads the parts itself: first prove that every one unpacks within the caps.
        safe_read.BoundedZip(path, zipfile.ZipFile(io.BytesIO(data))).check_all()
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise LoadError(path, f"not a Word document ({exc})", "save it from Word or LibreOffice as .docx") from exc

    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    blocks: list[str] = []

    def end_section() -> None:
        body = clean_text("\n\n".join(blocks))
        contents_list = stack and stack[-1][1].casefold() in _CONTENTS and all(b.startswith("- ") for b in blocks[1:])
        if body and not contents_list:
            sections.append(Section(body, tuple(t for _, t in stack)))
        blocks.clear()

    for child in document.element.body.iterchildren():
        if child.tag == qn("w:p"):
            paragraph = Paragraph(child, document)
            text = paragraph.text.strip()
            if not text:
                continue
            level = _heading_level(paragraph)
            if level is not None:
                text = _PERMALINK.sub("", text)
                end_section()
                while stack and stack[-1][0] >= level:
                    stack.pop()
                stack.append((level, clean_title(text)))
                blocks.append(text)
            else:
                style = (paragraph.style.name if paragraph.style is not None else "") or ""
                listed = style.lower().startswith("list") or child.find(f"{qn('w:pPr')}/{qn('w:numPr')}") is not None
                blocks.append(("- " + text) if listed else text)
        elif child.tag == qn("w:tbl"):
            rows = []
            for row in Table(child, document).rows:
                cells, seen = [], set()
                for cell in row.cells:  # merged cells come back once per grid column
                    if id(cell._tc) not in seen:
                        seen.add(id(cell._tc))
                        cells.append(" ".join(cell.text.split()))
                if any(cells):
                    rows.append(" | ".join(cells))
            if rows:
                blocks.append("\n".join(rows))
    end_section()
    title = document.core_properties.title or next((s.heading_path[0] for s in sections if s.heading_path), None)
    language = normalise(document.core_properties.language)
    return LoadedDocument("docx", sections, title, language=language)


def _heading_level(paragraph) -> int | None:
    style = paragraph.style
    while style is not None:
        name = style.name or ""
        if name.lower() == "title":
            return 1
        m = _HEADING_STYLE.match(name)
        if m:
            return max(1, int(m.group(1)))
        style = style.base_style
    return None
