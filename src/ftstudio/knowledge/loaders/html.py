"""HTML: the page's main content as paragraphs under its h1–h6 headings; scripts, styles, navigation, headers,
footers, asides, forms and hidden elements are left out. EPUB chapters go through the same extractor."""

from __future__ import annotations

import re
from pathlib import Path

from ftstudio.knowledge.document import LoadedDocument, Section, clean_text, clean_title
from ftstudio.knowledge.loaders.errors import LoadError
from ftstudio.knowledge.loaders.text import decode_text

_DROP = {
    "script", "style", "noscript", "template", "nav", "aside", "form", "iframe", "svg", "math", "button", "select",
    "textarea", "object", "embed", "canvas", "head", "title", "meta", "link", "audio", "video", "dialog",
}  # fmt: skip
_CHROME = {"header", "footer"}  # page chrome, unless inside the main content (an article's own header)
_DROP_ROLES = {"navigation", "banner", "contentinfo", "complementary", "search", "menu", "menubar", "dialog"}
_BLOCK = {
    "p", "div", "section", "article", "main", "ul", "ol", "li", "dl", "dt", "dd", "table", "thead", "tbody",
    "tfoot", "tr", "blockquote", "pre", "figure", "figcaption", "hr", "address", "details", "summary", "caption",
    "header", "footer", "body", "html", "center", "fieldset", "legend",
}  # fmt: skip
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.I)
_XML_DECL = re.compile(r"^\s*<\?xml[^>]*\?>")
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.I)


def decode_html(path: Path, data: bytes) -> str:
    """HTML bytes to text: a BOM, else the <meta charset>, else UTF-8 or the detected encoding."""
    if not data.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        m = _META_CHARSET.search(data[:4096])
        if m:
            try:
                return data.decode(m.group(1).decode("ascii"), errors="replace")
            except LookupError:
                pass
    return decode_text(path, data)


def parse(path: Path, text: str):
    """The document element of an HTML or XHTML text (lxml.html), LoadError if there is no markup to read."""
    import lxml.html
    from lxml import etree

    text = _XML_DECL.sub("", text, count=1)
    if not text.strip():
        raise LoadError(path, "no content (only whitespace)")
    try:
        return lxml.html.document_fromstring(text, parser=lxml.html.HTMLParser(remove_comments=True))
    except (etree.ParserError, ValueError) as exc:
        raise LoadError(path, f"not readable HTML ({exc})") from exc


def main_content(doc):
    """<main> (or role=main), else the single <article>, else <body>."""
    for xpath in ("//main", "//*[@role='main']"):
        found = doc.xpath(xpath)
        if len(found) == 1:
            return found[0]
    articles = doc.xpath("//article")
    if len(articles) == 1:
        return articles[0]
    body = doc.find("body")
    return body if body is not None else doc


class SectionBuilder:
    """Turns elements into Sections: paragraphs of inline text, a new section at each heading."""

    def __init__(self) -> None:
        self.sections: list[Section] = []
        self._stack: list[tuple[int, str]] = []
        self._paragraphs: list[str] = []
        self._inline: list[str] = []
        self._prefix = ""

    def add(self, element, *, chrome_ok: bool = False) -> None:
        self._walk(element, chrome_ok)
        self._end_paragraph()

    def finish(self) -> list[Section]:
        self._end_paragraph()
        self._end_section()
        return self.sections

    def end_chapter(self) -> None:
        self._end_paragraph()
        self._end_section()

    def _end_paragraph(self) -> None:
        line = " ".join("".join(self._inline).split())
        if line:
            self._paragraphs.append(self._prefix + line)
        self._inline = []
        self._prefix = ""

    def _end_section(self) -> None:
        if self._paragraphs:
            body = clean_text("\n\n".join(self._paragraphs))
            if body:
                self.sections.append(Section(body, tuple(t for _, t in self._stack)))
        self._paragraphs = []

    def _walk(self, el, chrome_ok: bool) -> None:
        tag = el.tag if isinstance(el.tag, str) else None
        if tag is None:  # comment or processing instruction: only its tail is text
            if el.tail:
                self._inline.append(el.tail)
            return
        tag = tag.rsplit("}", 1)[-1].lower()
        if _skipped(el, tag, chrome_ok):
            if el.tail:
                self._inline.append(el.tail)
            return
        if tag in _HEADINGS:
            self._end_paragraph()
            self._end_section()
            title = clean_title(el.text_content())
            if title:
                level = _HEADINGS[tag]
                while self._stack and self._stack[-1][0] >= level:
                    self._stack.pop()
                self._stack.append((level, title))
                self._paragraphs.append(title)
        elif tag == "pre":
            self._end_paragraph()
            code = el.text_content().strip("\n")
            if code.strip():
                self._paragraphs.append(code)
        elif tag == "br":
            self._inline.append("\n")
        elif tag == "tr":
            self._end_paragraph()
            cells = [" ".join(c.text_content().split()) for c in el if isinstance(c.tag, str) and c.tag in ("td", "th")]
            if any(cells):
                self._paragraphs.append(" | ".join(cells))
        else:
            block = tag in _BLOCK
            if block:
                self._end_paragraph()
                if tag in ("li", "dd"):
                    self._prefix = "- " if tag == "li" else "  "
            if el.text:
                self._inline.append(el.text)
            for child in el:
                self._walk(child, chrome_ok)
            if block:
                self._end_paragraph()
        if el.tail:
            self._inline.append(el.tail)


def _skipped(el, tag: str, chrome_ok: bool) -> bool:
    if tag in _DROP or (tag in _CHROME and not chrome_ok):
        return True
    attrib = el.attrib
    if "hidden" in attrib or attrib.get("aria-hidden") == "true":
        return True
    if attrib.get("role") in _DROP_ROLES:
        return True
    style = attrib.get("style")
    return bool(style and _HIDDEN_STYLE.search(style))


def load(path: Path, data: bytes) -> LoadedDocument:
    doc = parse(path, decode_html(path, data))
    root = main_content(doc)
    builder = SectionBuilder()
    builder.add(root, chrome_ok=root.tag in ("main", "article") or root.get("role") == "main")
    sections = builder.finish()
    if not sections:
        raise LoadError(path, "no readable text in the page's main content")
    title_el = doc.find(".//title")
    title = clean_title(title_el.text_content()) if title_el is not None else None
    return LoadedDocument("html", sections, title or None)
