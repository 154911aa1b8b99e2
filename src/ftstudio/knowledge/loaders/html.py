"""HTML: the page's main content as paragraphs under its h1–h6 headings. Left out: scripts, styles, forms, hidden
elements, and the site's boilerplate wherever it is: navigation, banners, page headers and footers, breadcrumbs,
sidebars, previous/next links, tables of contents and permalink anchors (¶), recognised by structure (element,
role, id and class names, link-only blocks), and, across the pages of one ingest, by repetition (`RepeatedBlocks`).
EPUB chapters go through the same extractor."""

from __future__ import annotations

import codecs
import re
from collections import defaultdict
from pathlib import Path

from ftstudio.knowledge.document import LoadedDocument, Section, clean_text, clean_title
from ftstudio.knowledge.language import normalise
from ftstudio.knowledge.loaders.errors import LoadError
from ftstudio.knowledge.loaders.text import decode_text

_DROP = {
    "script", "style", "noscript", "template", "nav", "aside", "form", "iframe", "svg", "math", "button", "select",
    "textarea", "object", "embed", "canvas", "head", "title", "meta", "link", "audio", "video", "dialog",
}  # fmt: skip
_CHROME = {"header", "footer"}  # page chrome, unless inside the main content (an article's own header)
_DROP_ROLES = {"navigation", "banner", "contentinfo", "complementary", "search", "menu", "menubar", "dialog"}
# An id or class naming page furniture (DocBook's navheader/navfooter, publican's banner and docnav, Sphinx's
# sphinxsidebar, related and headerlink, texinfo's Contents_element, ...): the element is boilerplate wherever the
# site puts it.
_BOILER_NAME = re.compile(
    r"^(?:.*nav(?:bar|igation|header|footer)?|banner|masthead|breadcrumbs?|sidebar|sphinxsidebar(?:wrapper)?|"
    r"related|relbar\d?|footer|header|skip-?links?|menu|pager|pagination|toc|toctree-wrapper|headerlink|"
    r"contents_element|sec_contents|sec_overview|shortcontents_element|"
    r"permalink|anchor-?link|edit-?this-?page|cookie-?\w*|share|social)$",
    re.I,
)
# Anchors that only mark a permalink to a heading (numbers too: paragraph numbers, footnote marks).
_PERMALINK_TEXT = {"¶", "#", "§", "🔗", "†", "link"}
# Words of "Prev / Up / Home / Next" navigation; a block made only of links and such words is boilerplate.
_NAV_WORDS = {
    "prev", "previous", "next", "up", "home", "top", "back", "contents", "index", "table", "of", "toc", "go", "to",
    "zurück", "weiter", "nach", "oben", "précédent", "suivant", "sommaire", "anterior", "siguiente", "inicio",
}  # fmt: skip
_BLOCK = {
    "p", "div", "section", "article", "main", "ul", "ol", "li", "dl", "dt", "dd", "table", "thead", "tbody",
    "tfoot", "tr", "blockquote", "pre", "figure", "figcaption", "hr", "address", "details", "summary", "caption",
    "header", "footer", "body", "html", "center", "fieldset", "legend",
}  # fmt: skip
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.I)
_XML_DECL = re.compile(r"^\s*<\?xml[^>]*\?>")
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.I)
_WORDS = re.compile(r"\w+")


def decode_html(path: Path, data: bytes) -> tuple[str, str]:
    """HTML bytes to text and its encoding: a BOM, else the <meta charset>, else as plain text is decoded."""
    if not data.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        m = _META_CHARSET.search(data[:4096])
        if m:
            name = m.group(1).decode("ascii")
            try:
                return data.decode(name, errors="replace"), codecs.lookup(name).name
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
    # huge_tree: libxml2 otherwise stops at 256 nested elements and silently drops everything after that point.
    parser = lxml.html.HTMLParser(remove_comments=True, huge_tree=True)
    try:
        doc = lxml.html.document_fromstring(text, parser=parser)
    except (etree.ParserError, ValueError) as exc:
        raise LoadError(path, f"not readable HTML ({exc})") from exc
    # Even huge_tree has a depth limit (2048); past it the rest of the page is lost, so the file fails instead.
    for entry in parser.error_log:
        if entry.type == etree.ErrorTypes.ERR_RESOURCE_LIMIT or "Excessive depth" in entry.message:
            raise LoadError(
                path,
                f"nested too deeply to read completely (line {entry.line}: {entry.message.strip()})",
                "the page's markup is broken or machine-made; save it as text or fix the nesting",
            )
    return doc


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


def declared_language(doc) -> str | None:
    """The language the page declares: `lang` (or `xml:lang`) on <html>, else a Content-Language or DC.language
    meta element."""
    for tag in (doc.get("lang"), doc.get("{http://www.w3.org/XML/1998/namespace}lang")):
        if normalise(tag):
            return normalise(tag)
    for meta in doc.iterfind(".//meta"):
        name = (meta.get("http-equiv") or meta.get("name") or "").lower()
        if name in ("content-language", "dc.language", "language"):
            return normalise((meta.get("content") or "").split(",")[0])
    return None


class SectionBuilder:
    """Turns elements into Sections: paragraphs of inline text, a new section at each heading."""

    def __init__(self, boilerplate: bool = True) -> None:
        self.boilerplate = boilerplate  # leave out boilerplate recognised by structure (see `_skipped`)
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

    def _walk(self, root, chrome_ok: bool) -> None:
        # Iterative (an explicit stack), so a page nested a thousand elements deep does not exhaust Python's stack.
        # An entry is an element to open, or (a block's end, its tail) to close it.
        stack: list = [root]
        while stack:
            item = stack.pop()
            if isinstance(item, tuple):
                block, tail = item
                if block:
                    self._end_paragraph()
                if tail:
                    self._inline.append(tail)
                continue
            el = item
            tag = el.tag if isinstance(el.tag, str) else None
            if tag is None or _skipped(el, tag.rsplit("}", 1)[-1].lower(), chrome_ok, self.boilerplate):
                # A comment, processing instruction or left-out element: only its tail is text.
                if el.tail and el is not root:
                    self._inline.append(el.tail)
                continue
            tag = tag.rsplit("}", 1)[-1].lower()
            tail = el.tail if el is not root else None
            if tag in _HEADINGS:
                self._end_paragraph()
                self._end_section()
                title = clean_title(_text_without_permalinks(el))
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
                cells = [
                    " ".join(_text_without_permalinks(c).split())
                    for c in el
                    if isinstance(c.tag, str) and c.tag in ("td", "th")
                ]
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
                stack.append((block, tail))
                stack.extend(reversed(el))
                continue
            if tail:
                self._inline.append(tail)


def _text_without_permalinks(element) -> str:
    """An element's text without the permalink anchors ("¶", "#", "§", "🔗") that documentation generators put in
    headings, table cells and code captions, at any depth (MkDocs and texinfo wrap them in a span)."""
    parts = [element.text or ""]
    for child in element:
        if isinstance(child.tag, str) and not _is_permalink(child):
            parts.append(_text_without_permalinks(child))
        parts.append(child.tail or "")
    return "".join(parts)


def _is_permalink(el) -> bool:
    """A link within the page that only marks a place: a heading's "¶", a paragraph's number (SiSU's "4")."""
    if el.tag != "a" or not (el.get("href") or "").startswith("#"):
        return False
    text = el.text_content().strip()
    return text in _PERMALINK_TEXT or text.isdigit()


def _names(el) -> list[str]:
    return ((el.get("class") or "") + " " + (el.get("id") or "")).split()


def _link_only(el, tag: str) -> bool:
    """A short block of navigation: its words are all navigation words ("Prev", "Up", "Home", "Next"), or it is a
    short list or table of nothing but links. (A paragraph that is one link, such as a URL, is content.)"""
    words = _WORDS.findall(" ".join(el.itertext()).lower())  # text nodes apart: <li>Prev</li><li>Next</li>
    if not words or len(words) > 12:
        return not words and el.find(".//a") is not None  # links with images only (arrows)
    if all(w in _NAV_WORDS for w in words):
        return True
    linked = " ".join(" ".join(a.itertext()) for a in el.iter("a")).lower()
    return tag not in ("p", "div") and bool(linked) and _WORDS.findall(linked) == words


def _skipped(el, tag: str, chrome_ok: bool, boilerplate: bool) -> bool:
    """Whether `el` is left out. `chrome_ok`: header and footer elements are the content's own; `boilerplate`: also
    leave out what is recognised as boilerplate by names, permalinks and link-only blocks."""
    if tag in _DROP or (tag in _CHROME and not chrome_ok):
        return True
    attrib = el.attrib
    if "hidden" in attrib or attrib.get("aria-hidden") == "true":
        return True
    if attrib.get("role") in _DROP_ROLES:
        return True
    style = attrib.get("style")
    if style and _HIDDEN_STYLE.search(style):
        return True
    if not boilerplate:
        return False
    if tag == "a":
        return _is_permalink(el)
    if any(_BOILER_NAME.match(n) and not (chrome_ok and n.lower() in _CHROME) for n in _names(el)):
        return True
    return tag in ("ul", "ol", "p", "div", "table", "dl") and _link_only(el, tag)


def load(path: Path, data: bytes) -> LoadedDocument:
    text, encoding = decode_html(path, data)
    doc = parse(path, text)
    root = main_content(doc)
    chrome_ok = root.tag in ("main", "article") or root.get("role") == "main"
    sections = []
    # A page that is nothing but navigation (a site's contents page) is read with its links rather than not at all.
    for boilerplate in (True, False):
        builder = SectionBuilder(boilerplate)
        builder.add(root, chrome_ok=chrome_ok)
        sections = builder.finish()
        if sections:
            break
    if not sections:
        raise LoadError(path, "no readable text in the page's main content")
    title_el = doc.find(".//title")
    title = clean_title(title_el.text_content()) if title_el is not None else ""
    if not title:
        title = next((s.heading_path[0] for s in sections if s.heading_path), "")
    return LoadedDocument("html", sections, title or None, encoding, language=declared_language(doc))


class RepeatedBlocks:
    """Boilerplate by repetition: a short paragraph at the start or end of a page that earlier pages of the same
    folder also had there (a site's banner, "Download the ebook", a copyright line) is left out of later pages.

    One instance lives for one ingest. A paragraph counts as repeated from its third page on; the pages it was
    first seen on keep it (ingest reads one file at a time and does not read a folder twice).
    """

    EDGE = 3  # paragraphs at each end of a page that are compared
    SHORT = 200  # characters: longer paragraphs are content, however often they repeat
    SEEN = 2  # earlier pages a paragraph must have been on to be dropped

    def __init__(self) -> None:
        self._seen: dict[str, dict[str, int]] = defaultdict(dict)  # folder -> paragraph -> pages seen on

    def filter(self, path: Path, sections: list[Section]) -> list[Section]:
        seen = self._seen[str(path.parent)]
        paragraphs = [(i, j, p) for i, s in enumerate(sections) for j, p in enumerate(s.text.split("\n\n"))]
        edges = paragraphs[: self.EDGE] + paragraphs[self.EDGE :][-self.EDGE :]
        drop = set()
        for i, j, p in edges:
            key = " ".join(p.split()).casefold()
            if len(key) > self.SHORT or p in sections[i].heading_path:
                continue
            if seen.get(key, 0) >= self.SEEN:
                drop.add((i, j))
            seen[key] = seen.get(key, 0) + 1
        if not drop:
            return sections
        kept = []
        for i, s in enumerate(sections):
            text = "\n\n".join(p for j, p in enumerate(s.text.split("\n\n")) if (i, j) not in drop)
            if text.strip():
                kept.append(Section(text, s.heading_path, s.page, s.ocr))
        return kept or sections
