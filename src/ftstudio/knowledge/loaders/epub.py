"""EPUB: the chapters in the OPF spine's reading order, each through the HTML extractor, headings kept.

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
        for item in opf.iterfind(".//opf:manifest/opf:item", _NS):
            href = posixpath.normpath(posixpath.join(base, unquote(item.get("href", ""))))
            manifest[item.get("id")] = (href, item.get("media-type"))
        title_el = opf.find(".//dc:title", _NS)
        builder = SectionBuilder()
        for itemref in opf.iterfind(".//opf:spine/opf:itemref", _NS):
            href, media_type = manifest.get(itemref.get("idref"), (None, None))
            if href is None or media_type not in _HTML_TYPES or href not in names:
                continue
            chapter = parse(path, decode_html(path, book.read(href)))
            builder.add(main_content(chapter), chrome_ok=True)
            builder.end_chapter()
    except (zipfile.BadZipFile, etree.XMLSyntaxError, KeyError, EOFError) as exc:
        raise LoadError(path, f"damaged EPUB ({exc})", "check the file: it may be truncated") from exc
    sections = builder.finish()
    if not sections:
        raise LoadError(path, "no readable text in the EPUB's chapters")
    title = clean_title(title_el.text or "") if title_el is not None else None
    return LoadedDocument("epub", sections, title or None)
