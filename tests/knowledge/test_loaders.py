"""Every loader on real files the tests write, and every bad input a loader must refuse by name."""

from __future__ import annotations

import codecs
import zipfile

import pytest
from kfiles import make_docx, make_epub, make_pdf

from ftstudio.knowledge.loaders import LoadError, load_document


def _load(path):
    return load_document(path, path.read_bytes())


def test_pdf_pages_and_bookmarks(tmp_path):
    pdf = make_pdf(
        tmp_path / "book.pdf",
        [["Chapter One", "Fractions are (parts) of a whole."], ["Decimals are fractions too."], ["Percent."]],
        outline=[("Fractions", 0), ("Decimals", 1)],
    )
    doc = _load(pdf)
    assert doc.type == "pdf"
    assert [(s.page, s.heading_path) for s in doc.sections] == [
        (1, ("Fractions",)),
        (2, ("Decimals",)),
        (3, ("Decimals",)),
    ]
    assert doc.sections[0].text == "Chapter One\nFractions are (parts) of a whole."


def test_pdf_bad_inputs_say_why(tmp_path):
    good = make_pdf(tmp_path / "good.pdf", [["Some text on a page."]]).read_bytes()
    (tmp_path / "truncated.pdf").write_bytes(good[: len(good) * 2 // 3])
    make_pdf(tmp_path / "locked.pdf", [["Secret text."]], user_password="pw")
    make_pdf(tmp_path / "scan.pdf", [[], []], image_only=True)
    (tmp_path / "fake.pdf").write_bytes(b"<html>not a pdf</html>")
    expected = {
        "truncated.pdf": "truncated",
        "locked.pdf": "encrypted",
        "scan.pdf": "OCR",  # needs OCR, or OCR found no text in its shapes
        "fake.pdf": "not a PDF",
    }
    for name, reason in expected.items():
        with pytest.raises(LoadError) as info:
            _load(tmp_path / name)
        assert name in str(info.value) and reason in str(info.value)
        assert info.value.hint


def test_docx_headings_lists_and_tables(tmp_path):
    path = make_docx(
        tmp_path / "notes.docx",
        [
            ("h1", "Chapter 1"),
            ("p", "Numbers everywhere."),
            ("h2", "Fractions"),
            ("p", "A fraction names part of a whole."),
            ("table", [["Fraction", "Decimal"], ["1/2", "0.5"]]),
            ("h1", "Chapter 2"),
            ("p", "Geometry."),
        ],
    )
    doc = _load(path)
    assert [s.heading_path for s in doc.sections] == [("Chapter 1",), ("Chapter 1", "Fractions"), ("Chapter 2",)]
    assert "Fraction | Decimal\n1/2 | 0.5" in doc.sections[1].text
    assert doc.sections[1].text.startswith("Fractions\n\nA fraction names part")


def test_docx_that_is_not_an_archive(tmp_path):
    (tmp_path / "fake.docx").write_bytes(b"just some text pretending to be word")
    (tmp_path / "old.docx").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600)
    with zipfile.ZipFile(tmp_path / "otherzip.docx", "w") as z:
        z.writestr("hello.txt", "a zip, but not a Word document")
    with pytest.raises(LoadError, match="fake.docx: not a valid DOCX"):
        _load(tmp_path / "fake.docx")
    with pytest.raises(LoadError) as info:
        _load(tmp_path / "old.docx")
    assert "save it as .docx" in info.value.hint
    with pytest.raises(LoadError, match="otherzip.docx: not a Word document"):
        _load(tmp_path / "otherzip.docx")


def test_epub_follows_the_spine_not_the_manifest(tmp_path):
    path = make_epub(
        tmp_path / "book.epub",
        [
            ("b.xhtml", "<h1>Second</h1><nav><p>table of contents</p></nav><p>Later text.</p>"),
            ("a.xhtml", "<h1>First</h1><h2>Part</h2><p>Early <em>text</em>.</p><script>alert(1)</script>"),
        ],
        spine_order=[1, 0],
    )
    doc = _load(path)
    assert doc.type == "epub" and doc.title == "Test Book"
    assert [s.heading_path for s in doc.sections] == [("First",), ("First", "Part"), ("Second",)]
    text = "\n".join(s.text for s in doc.sections)
    assert "Early text." in text and "table of contents" not in text and "alert" not in text
    assert text.index("Early text.") < text.index("Later text.")


def test_epub_bad_archives(tmp_path):
    (tmp_path / "fake.epub").write_bytes(b"PK but not really a zip file at all")
    with zipfile.ZipFile(tmp_path / "nocontainer.epub", "w") as z:
        z.writestr("mimetype", "application/epub+zip")
    good = make_epub(tmp_path / "good.epub", [("a.xhtml", "<p>text</p>")]).read_bytes()
    (tmp_path / "cut.epub").write_bytes(good[: len(good) // 2])
    for name, reason in [
        ("fake.epub", "not a valid EPUB"),
        ("nocontainer.epub", "container.xml"),
        ("cut.epub", "EPUB"),
    ]:
        with pytest.raises(LoadError, match=reason) as info:
            _load(tmp_path / name)
        assert name in str(info.value)


def test_html_keeps_main_content_only(tmp_path):
    page = tmp_path / "page.html"
    page.write_text(
        "<html><head><title>Fractions</title><style>p {color: red}</style><script>var tracking = 1;</script></head>"
        "<body><header>Site banner</header><nav><a href='/'>Home</a></nav>"
        "<main><article><header><h1>Fractions</h1></header><p>A fraction is <b>part</b> of a whole.</p>"
        "<div hidden>secret hidden text</div><ul><li>halves</li><li>thirds</li></ul>"
        "<h2>Adding</h2><p>Find a common denominator.</p><aside>Buy our book!</aside></article></main>"
        "<footer>Copyright footer</footer></body></html>",
        encoding="utf-8",
    )
    doc = _load(page)
    assert doc.title == "Fractions"
    assert [s.heading_path for s in doc.sections] == [("Fractions",), ("Fractions", "Adding")]
    text = "\n".join(s.text for s in doc.sections)
    assert "A fraction is part of a whole." in text and "- halves" in text
    for junk in ("Site banner", "Home", "tracking", "color", "secret hidden", "Buy our book", "Copyright"):
        assert junk not in text


def test_html_meta_charset(tmp_path):
    page = tmp_path / "latin.html"
    page.write_bytes(
        '<html><head><meta charset="iso-8859-1"></head><body><p>Crème brûlée à la française</p>'.encode("latin-1")
    )
    assert "Crème brûlée à la française" in _load(page).sections[0].text


def test_markdown_heading_hierarchy(tmp_path):
    md = tmp_path / "notes.md"
    md.write_text(
        "---\ntitle: x\n# not a heading in front matter\n---\nIntro line.\n\n# Chapter 1\n\nText.\n\n"
        "```python\n# a comment, not a heading\n```\n\n## Fractions ##\n\nHalves.\n\nSetext Title\n============\n\n"
        "Body.\n\n### Deep\n\nDeeper.\n",
        encoding="utf-8",
    )
    doc = _load(md)
    assert [s.heading_path for s in doc.sections] == [
        (),
        ("Chapter 1",),
        ("Chapter 1", "Fractions"),
        ("Setext Title",),
        ("Setext Title", "Deep"),
    ]
    assert "# a comment, not a heading" in doc.sections[1].text
    # Front matter is metadata, not text; the rest is kept as written.
    body = md.read_text().split("---\n", 2)[2]
    assert "".join(s.text for s in doc.sections).replace("\n", "") == body.strip().replace("\n", "")
    assert doc.meta == {"title": "x"} and doc.title == "x" and doc.encoding == "utf-8"


@pytest.mark.parametrize(
    "encoding,bom",
    [
        ("utf-8", b""),
        ("utf-8", codecs.BOM_UTF8),
        ("utf-16-le", codecs.BOM_UTF16_LE),
        ("utf-16-be", codecs.BOM_UTF16_BE),
    ],
)
def test_text_encodings_with_and_without_bom(tmp_path, encoding, bom):
    text = "Brüche und Dezimalzahlen: ½ = 0,5 — naïve café, 数学.\n\nZweiter Absatz."
    path = tmp_path / "notes.txt"
    path.write_bytes(bom + text.encode(encoding))
    doc = _load(path)
    assert doc.type == "text" and doc.sections[0].text == text


def test_legacy_single_byte_text_is_detected(tmp_path):
    text = (
        "Le café était très animé ce matin-là. Les élèves répétaient leurs leçons de mathématiques : "
        "fractions, décimales et pourcentages. « Très bien », déclara la maîtresse, en souriant à Hélène.\n"
    ) * 6
    path = tmp_path / "legacy.txt"
    path.write_bytes(text.encode("cp1252"))
    assert _load(path).sections[0].text == text.strip()


def test_bad_files_named_with_the_reason(tmp_path):
    (tmp_path / "empty.md").write_bytes(b"")
    (tmp_path / "binary.txt").write_bytes(bytes(range(256)) * 40)
    (tmp_path / "slides.pptx").write_bytes(b"whatever")
    (tmp_path / "README").write_bytes(b"no extension")
    for name, reason in [
        ("empty.md", "empty file"),
        ("binary.txt", "binary content"),
        ("slides.pptx", "unsupported file type '.pptx'"),
        ("README", "unsupported file type"),
    ]:
        with pytest.raises(LoadError) as info:
            _load(tmp_path / name)
        assert str(info.value).startswith(f"{tmp_path / name}: {reason}")
