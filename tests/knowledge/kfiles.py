"""Real documents written by the tests: PDFs built byte by byte (with a correct xref, optionally RC4-encrypted),
DOCX through python-docx, EPUB zips with an OPF spine."""

from __future__ import annotations

import hashlib
import re
import struct
import zipfile
from pathlib import Path

_PAD = bytes.fromhex("28BF4E5E4E758A4164004E56FFFA01082E2E00B6D0683E802F0CA9FE6453697A")


def _rc4(key: bytes, data: bytes) -> bytes:
    s = list(range(256))
    j = 0
    for i in range(256):
        j = (j + s[i] + key[i % len(key)]) % 256
        s[i], s[j] = s[j], s[i]
    out = bytearray()
    i = j = 0
    for byte in data:
        i = (i + 1) % 256
        j = (j + s[i]) % 256
        s[i], s[j] = s[j], s[i]
        out.append(byte ^ s[(s[i] + s[j]) % 256])
    return bytes(out)


def _escape(text: str) -> bytes:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)").encode("latin-1")


def make_pdf(
    path: Path,
    pages: list[list[str]],
    *,
    outline: list[tuple[str, int] | tuple[str, int, float]] | None = None,
    user_password: str | None = None,
    image_only: bool = False,
) -> Path:
    """A PDF with one page per entry, each line of text drawn in Helvetica (a real text layer); `^{1}` in a line is a
    footnote mark (7 pt, raised).

    `outline`: bookmarks (title, 0-based page[, the height it points to; default the page's top]); line i of a page
    is drawn with its baseline at 740 - 14 i. `user_password`: encrypt with the standard security handler
    (revision 2, RC4 40-bit), so opening needs the password. `image_only`: draw filled rectangles, no text at all.
    """
    file_id = hashlib.md5(str(path).encode()).digest()
    key = None
    encrypt_dict = b""
    if user_password is not None:
        owner_key = hashlib.md5((b"owner" + _PAD)[:32]).digest()[:5]
        o_entry = _rc4(owner_key, (user_password.encode() + _PAD)[:32])
        permissions = -44
        key = hashlib.md5(
            (user_password.encode() + _PAD)[:32] + o_entry + struct.pack("<i", permissions) + file_id
        ).digest()[:5]
        u_entry = _rc4(key, _PAD)
        encrypt_dict = (
            b"<< /Filter /Standard /V 1 /R 2 /Length 40 /O <" + o_entry.hex().encode() + b"> /U <"
            + u_entry.hex().encode() + b"> /P " + str(permissions).encode() + b" >>"
        )  # fmt: skip

    objects: list[bytes] = []  # object i+1

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    def stream(num: int, content: bytes) -> bytes:
        if key is not None:
            obj_key = hashlib.md5(key + struct.pack("<i", num)[:3] + b"\x00\x00").digest()[:10]
            content = _rc4(obj_key, content)
        return b"<< /Length " + str(len(content)).encode() + b" >>\nstream\n" + content + b"\nendstream"

    catalog = add(b"")  # filled in below
    pages_num = add(b"")
    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    page_nums = []
    for lines in pages:
        if image_only:
            content = b"0.5 g 72 400 300 200 re f 0.2 g 100 650 120 80 re f"
        else:
            ops = [b"BT /F1 12 Tf 14 TL 72 740 Td"]
            for line in lines:
                # "^{1}" draws a footnote mark: smaller and raised, as print sets it.
                for i, part in enumerate(re.split(r"\^\{(\d+)\}", line)):
                    if i % 2:
                        ops.append(b"/F1 7 Tf 4 Ts (" + part.encode() + b") Tj /F1 12 Tf 0 Ts")
                    elif part:
                        ops.append(b"(" + _escape(part) + b") Tj")
                ops.append(b"T*")
            ops.append(b"ET")
            content = b"\n".join(ops)
        content_num = len(objects) + 1
        add(stream(content_num, content))
        page_nums.append(
            add(
                b"<< /Type /Page /Parent " + str(pages_num).encode() + b" 0 R /MediaBox [0 0 612 792] "
                b"/Resources << /Font << /F1 "
                + str(font).encode()
                + b" 0 R >> >> /Contents "
                + str(content_num).encode()
                + b" 0 R >>"
            )  # fmt: skip
        )
    kids = b" ".join(str(n).encode() + b" 0 R" for n in page_nums)
    objects[pages_num - 1] = b"<< /Type /Pages /Kids [" + kids + b"] /Count " + str(len(page_nums)).encode() + b" >>"
    extra = b""
    if outline:
        outlines_num = add(b"")
        item_nums = [add(b"") for _ in outline]
        for i, (mark, num) in enumerate(zip(outline, item_nums, strict=True)):
            title, page, top = (*mark, 792)[:3]
            title_bytes = title.encode("latin-1")
            if key is not None:
                title_bytes = _rc4(
                    hashlib.md5(key + struct.pack("<i", num)[:3] + b"\x00\x00").digest()[:10], title_bytes
                )
            links = b""
            if i > 0:
                links += b" /Prev " + str(item_nums[i - 1]).encode() + b" 0 R"
            if i < len(outline) - 1:
                links += b" /Next " + str(item_nums[i + 1]).encode() + b" 0 R"
            objects[num - 1] = (
                b"<< /Title <" + title_bytes.hex().encode() + b"> /Parent " + str(outlines_num).encode() + b" 0 R"
                + links + b" /Dest [" + str(page_nums[page]).encode() + b" 0 R /XYZ 0 " + str(top).encode() + b" 0] >>"
            )  # fmt: skip
        objects[outlines_num - 1] = (
            b"<< /Type /Outlines /First " + str(item_nums[0]).encode() + b" 0 R /Last "
            + str(item_nums[-1]).encode() + b" 0 R /Count " + str(len(item_nums)).encode() + b" >>"
        )  # fmt: skip
        extra = b" /Outlines " + str(outlines_num).encode() + b" 0 R /PageMode /UseOutlines"
    objects[catalog - 1] = b"<< /Type /Catalog /Pages " + str(pages_num).encode() + b" 0 R" + extra + b" >>"
    encrypt_ref = b""
    if encrypt_dict:
        encrypt_ref = b" /Encrypt " + str(add(encrypt_dict)).encode() + b" 0 R"

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for num, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += str(num).encode() + b" 0 obj\n" + body + b"\nendobj\n"
    xref_at = len(out)
    out += b"xref\n0 " + str(len(objects) + 1).encode() + b"\n0000000000 65535 f \n"
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    out += (
        b"trailer\n<< /Size " + str(len(objects) + 1).encode() + b" /Root " + str(catalog).encode() + b" 0 R"
        + encrypt_ref + b" /ID [<" + file_id.hex().encode() + b"> <" + file_id.hex().encode() + b">] >>\n"
        + b"startxref\n" + str(xref_at).encode() + b"\n%%EOF\n"
    )  # fmt: skip
    path.write_bytes(bytes(out))
    return path


def make_scanned_pdf(path: Path, text_pages: list[list[str]], scanned: dict[int, list[str]]) -> Path:
    """A PDF whose pages `scanned` (index -> lines) are images of rendered text (no text layer), the others text
    pages as in `make_pdf`: a scan, or a mixed document."""
    import pypdfium2 as pdfium
    from PIL import Image, ImageDraw, ImageFont

    text_pdf = pdfium.PdfDocument(make_pdf(path.with_suffix(".text.pdf"), text_pages)) if text_pages else None
    out = pdfium.PdfDocument.new()
    font = ImageFont.load_default(size=44)
    for index in range(len(text_pages) + len(scanned)):
        if index in scanned:
            image = Image.new("L", (1700, 2200), 255)
            draw = ImageDraw.Draw(image)
            for i, line in enumerate(scanned[index]):
                draw.text((150, 250 + 90 * i), line, font=font, fill=0)
            page = out.new_page(612, 792)
            bitmap = pdfium.PdfBitmap.from_pil(image)
            picture = pdfium.PdfImage.new(out)
            picture.set_bitmap(bitmap)
            picture.set_matrix(pdfium.PdfMatrix().scale(612, 792))
            page.insert_obj(picture)
            page.gen_content()
        else:
            out.import_pages(text_pdf, [index - sum(1 for s in scanned if s < index)])
    out.save(path)
    return path


def make_docx(path: Path, blocks: list[tuple[str, object]]) -> Path:
    """A DOCX from ("h1".."h3", text), ("p", text) and ("table", [[cell, ...], ...]) blocks, via python-docx."""
    import docx

    document = docx.Document()
    for kind, value in blocks:
        if kind.startswith("h"):
            document.add_heading(str(value), level=int(kind[1:]))
        elif kind == "p":
            document.add_paragraph(str(value))
        elif kind == "table":
            rows = list(value)  # type: ignore[arg-type]
            table = document.add_table(rows=len(rows), cols=len(rows[0]))
            for r, row in enumerate(rows):
                for c, cell in enumerate(row):
                    table.cell(r, c).text = str(cell)
    document.save(str(path))
    return path


def make_epub(
    path: Path,
    chapters: list[tuple[str, str]],
    *,
    spine_order: list[int] | None = None,
    nonlinear: set[int] = frozenset(),
    nav: int | None = None,
) -> Path:
    """An EPUB 3 zip: chapters (file name, XHTML body) listed in the manifest in the given order, read in
    `spine_order` (indexes into chapters; default: as given); `nonlinear` chapters are marked linear="no", and
    chapter `nav` is the navigation document."""
    order = spine_order if spine_order is not None else list(range(len(chapters)))
    manifest = "\n".join(
        f'<item id="c{i}" href="text/{name}" media-type="application/xhtml+xml"'
        + (' properties="nav"' if i == nav else "")
        + "/>"
        for i, (name, _) in enumerate(chapters)
    )
    spine = "\n".join(f'<itemref idref="c{i}"' + (' linear="no"' if i in nonlinear else "") + "/>" for i in order)
    opf = f"""<?xml version="1.0" encoding="UTF-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="id">
  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>Test Book</dc:title>
  <dc:identifier id="id">urn:test</dc:identifier></metadata>
  <manifest>{manifest}</manifest>
  <spine>{spine}</spine>
</package>"""
    container = """<?xml version="1.0"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
  <rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles>
</container>"""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(zipfile.ZipInfo("mimetype"), "application/epub+zip")
        z.writestr("META-INF/container.xml", container)
        z.writestr("OEBPS/content.opf", opf)
        for name, body in chapters:
            z.writestr(
                f"OEBPS/text/{name}",
                '<?xml version="1.0" encoding="utf-8"?>\n<html xmlns="http://www.w3.org/1999/xhtml">'
                f"<head><title>{name}</title></head><body>{body}</body></html>",
            )
    return path
