"""EPUB: the chapters in the OPF spine's reading order, each through the HTML extractor, headings kept.

Spine items marked `linear="no"` (supplementary material: notes, other languages' editions) are left out, and so
are navigation documents (the EPUB 3 nav, the guide's table of contents, and chapters that are nothing but a list of
headings linking into the book): the book's own headings are its structure. Both are named in the notes.
Read with zipfile and lxml only (EbookLib is AGPL). DRM-protected books are refused with a clear reason.
"""

from __future__ import annotations

import io
import posixpath
import zipfile
from pathlib import Path
from urllib.parse import unquote

from ftstudio.knowledge import safe_read
from ftstudio.knowledge.document import LoadedDocument, clean_title
from ftstudio.knowledge.language import normalise
from ftstudio.knowledge.loaders.errors import LoadError
from ftstudio.knowledge.loaders.html import SectionBuilder, decode_html, main_content, parse

_NS = {
    "c": "urn:oasis:names:tc:opendocument:xmlns:container",
    "opf": "http://www.idpf.org/2007/opf",
    "dc": "http://purl.org/dc/elements/1.1/",
}
_HTML_TYPES = {"application/xhtml+xml", "text/html", "application/x-dtbook+xml"}


def load(path: Path, data: bytes) -> LoadedDocument:
    from lxml import etree

    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise LoadError(path, "not a valid EPUB (not a zip archive)", "check the file: it may be damaged or renamed")
    try:
        book = safe_read.BoundedZip(path, zipfile.ZipFile(io.BytesIO(data)))  # every read within the caps
        names = set(book.namelist())
        if "META-INF/encryption.xml" in names and b"EncryptedData" in book.read("META-INF/encryption.xml"):
            raise LoadError(path, "DRM-protected EPUB (its chapters are encrypted)", "ingest a DRM-free copy")
        if "META-INF/container.xml" not in names:
            raise LoadError(path, "not a valid EPUB (no META-INF/container.xml)")
        parser = etree.XMLParser(resolve_entities=False, no_network=True)
        container = etree.fromstring(book.read("META-INF/container.xml"), parser)
        rootfile = container.find(".//c:rootfile", _NS)
        opf_path = rootfile.get("full-path") if rootfile is not None else None
        if not opf_path or opf_path not in names:
            raise LoadError(path, f"not a valid EPUB (package document {opf_path!r} missing)")
        opf = etree.fromstring(book.read(opf_path), parser)
        base = posixpath.dirname(opf_path)
        manifest = {}
        navigation = set()
        for item in opf.iterfind(".//opf:manifest/opf:item", _NS):
            href = posixpath.normpath(posixpath.join(base, unquote(item.get("href", "").partition("#")[0])))
            manifest[item.get("id")] = (href, item.get("media-type"))
            if "nav" in (item.get("properties") or "").split():
                navigation.add(href)
        for ref in opf.iterfind(".//opf:guide/opf:reference[@type='toc']", _NS):
            navigation.add(posixpath.normpath(posixpath.join(base, unquote(ref.get("href", "").partition("#")[0]))))
        title_el = opf.find(".//dc:title", _NS)
        builder = SectionBuilder()
        read, nonlinear, contents = set(), [], []
        for itemref in opf.iterfind(".//opf:spine/opf:itemref", _NS):
            href, media_type = manifest.get(itemref.get("idref"), (None, None))
            if href is None or media_type not in _HTML_TYPES or href not in names or href in read:
                continue
            read.add(href)
            if itemref.get("linear") == "no":
                nonlinear.append(href)
                continue
            chapter = parse(path, decode_html(path, book.read(href))[0])
            if href in navigation or _is_contents(chapter):
                contents.append(href)
                continue
            builder.add(main_content(chapter), chrome_ok=True)
            builder.end_chapter()
    except (zipfile.BadZipFile, etree.XMLSyntaxError, KeyError, EOFError) as exc:
        raise LoadError(path, f"damaged EPUB ({exc})", "check the file: it may be truncated") from exc
    sections = builder.finish()
    if not sections:
        raise LoadError(path, "no readable text in the EPUB's chapters")
    title = clean_title(title_el.text or "") if title_el is not None else None
    notes = []
    if nonlinear:
        notes.append(f'left out {len(nonlinear)} spine items marked linear="no" ({", ".join(nonlinear)})')
    if contents:
        notes.append(f"left out {len(contents)} table-of-contents documents ({', '.join(contents)})")
    language_el = opf.find(".//dc:language", _NS)
    language = normalise(language_el.text) if language_el is not None else None
    return LoadedDocument("epub", sections, title or None, notes=notes, language=language)


def _is_contents(chapter) -> bool:
    """A chapter that is a table of contents: mostly headings that are nothing but a link into the book, or a page
    whose text is almost all link text."""
    headings = chapter.xpath("//*[self::h1 or self::h2 or self::h3 or self::h4 or self::h5 or self::h6]")
    linked = sum(1 for h in headings if h.xpath(".//a[@href]") and _words(h) == _link_words(h))
    if len(headings) >= 5 and linked >= 0.5 * len(headings):
        return True
    body = chapter.find("body")
    text = _words(body if body is not None else chapter)
    return len(text) > 30 and len(_link_words(chapter)) >= 0.8 * len(text)


def _words(element) -> list[str]:
    return element.text_content().split()


def _link_words(element) -> list[str]:
    return [w for a in element.iter("a") if a.get("href") for w in a.text_content().split()]
