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


def test_pdf_hyphens_running_lines_and_contents_pages(tmp_path):
    body = [
        ["Algebra Handbook, Release 2", "Contents", "1 Fractions . . . . . . . . 3", "2 Decimals . . . . . . . . 4",
         "3 Percent . . . . . . . . . 5", "4 Ratios . . . . . . . . . . 6", "i"],
    ] + [
        ["Algebra Handbook, Release 2", f"This page explains {topic} and the distri-", "bution of US-",
         f"ASCII letters in {topic}.", f"More about {topic} follows.", f"{n}.{n} {topic.title()} {n + 2}"]
        for n, topic in enumerate(["fractions", "decimals", "percent", "ratios", "powers", "roots", "logs"], 1)
    ]  # fmt: skip
    doc = _load(make_pdf(tmp_path / "book.pdf", body))
    text = "\n".join(s.text for s in doc.sections)
    assert "the distribution of US-ASCII letters in fractions." in text.replace("\n", " ")
    assert not any(ord(ch) < 32 and ch not in "\n\t" for ch in text)
    assert "Algebra Handbook, Release 2" not in text  # the running header
    assert "1.1 Fractions 3" not in text and "7.7 Logs 9" not in text  # footers carrying the page number
    assert "Fractions . ." not in text and doc.sections[0].page == 2
    assert doc.notes == ["left out 1 contents or index pages (1)"]
    assert len(doc.sections) == 7 and all(s.text.endswith("follows.") for s in doc.sections)
    # A page of a table whose lines end in numbers is content, not a contents page.
    ports = ["Well-known ports", "http 80", "ssh 22", "imap 143", "smtp 25", "ntp 123", "dns 53"]
    table = _load(make_pdf(tmp_path / "ports.pdf", [ports]))
    assert table.notes == [] and "imap 143" in table.sections[0].text


def test_pdf_footnote_marks_are_separated_from_their_words(tmp_path):
    lines = ["The archive is split into areas^{1} based on licences.", "Use amd64 or i386 builds.^{2}"]
    doc = _load(make_pdf(tmp_path / "notes.pdf", [lines]))
    # (PDFium starts a new line after a raised mark drawn this way; real PDFs keep the line.)
    text = " ".join(doc.sections[0].text.split())
    assert text == "The archive is split into areas [1] based on licences. Use amd64 or i386 builds. [2]"


def test_pdf_bookmark_inside_a_page_starts_where_it_points(tmp_path):
    lines = ["End of the previous section.", "Decimals", "Decimals write tenths."]
    # Baselines at 740, 726, 712: a bookmark pointing at 732 starts with the second line.
    doc = _load(
        make_pdf(
            tmp_path / "b.pdf", [["Fractions", "Halves."], lines], outline=[("Fractions", 0), ("Decimals", 1, 732)]
        )
    )
    assert [(s.page, s.heading_path, s.text.split("\n")[0]) for s in doc.sections] == [
        (1, ("Fractions",), "Fractions"),
        (2, ("Fractions",), "End of the previous section."),
        (2, ("Decimals",), "Decimals"),
    ]
    assert doc.title == "Fractions"


def test_pdf_image_only_pages_are_read_by_ocr(tmp_path):
    from kfiles import make_scanned_pdf

    from ftstudio.knowledge.loaders import ocr

    if not ocr.available():
        pytest.skip("Tesseract is not installed (apt install tesseract-ocr tesseract-ocr-eng; pip install pytesseract)")
    pdf = make_scanned_pdf(
        tmp_path / "mixed.pdf",
        [["A text page about leaves."], ["Another text page."]],
        {1: ["Photosynthesis makes sugar"]},
    )
    doc = _load(pdf)
    assert [(s.page, s.ocr) for s in doc.sections] == [(1, False), (2, True), (3, False)]
    assert "Photosynthesis makes sugar" in doc.sections[1].text
    assert doc.notes == ["read 1 image-only pages by OCR (2)"]
    scan = _load(make_scanned_pdf(tmp_path / "scan.pdf", [], {0: ["The scanned page says hello"]}))
    assert scan.sections[0].ocr and "scanned page says hello" in scan.sections[0].text


def test_pdf_image_only_pages_without_ocr_are_named(tmp_path, monkeypatch):
    from kfiles import make_scanned_pdf

    from ftstudio.knowledge.loaders import ocr

    monkeypatch.setattr(ocr, "available", lambda: False)  # as on a machine without Tesseract
    pdf = make_scanned_pdf(tmp_path / "mixed.pdf", [["A text page."], ["Another text page."]], {1: ["Scanned"]})
    doc = _load(pdf)
    assert [s.page for s in doc.sections] == [1, 3]
    assert len(doc.notes) == 1 and "images only and were not read (2)" in doc.notes[0]
    assert "tesseract-ocr" in doc.notes[0] and "ftstudio[ocr]" in doc.notes[0]
    with pytest.raises(LoadError, match="needs OCR") as info:
        _load(make_scanned_pdf(tmp_path / "scan.pdf", [], {0: ["Scanned"]}))
    assert "tesseract-ocr" in info.value.hint


HANDBOOK_PAGE = """<html><head><title>Chapter 6. APT</title></head><body>
<div id="banner"><a href="http://example.org/get/"><span class="text">Download the ebook</span></a></div>
<p id="title"><a class="left" href="http://www.debian.org"><img alt="Product Site" src="l.png"/></a></p>
<ul class="docnav top"><li class="previous"><a accesskey="p" href="a.html"><strong>Prev</strong></a></li>
<li class="home">The Debian Administrator's Handbook</li>
<li class="next"><a href="b.html"><strong>Next</strong></a></li></ul>
<div class="navheader"><table><tr><th>Chapter 6. APT</th></tr><tr><td><a href="a.html">Prev</a></td></tr></table></div>
<div role="navigation" class="related"><a href="index.html">index</a></div>
<div class="breadcrumbs"><a href="/">Docs</a> » <a href="/apt">APT</a></div>
<div class="chapter">
<h1>6.1. Filling in the sources.list File<a class="headerlink" href="#sources" title="Permalink">¶</a></h1>
<p>Each active line is a package source.<a href="#fn1">1</a></p>
<ul><li><a href="x.html">Prev</a></li><li><a href="/">Up</a></li><li><a href="/">Home</a></li>
<li><a href="y.html">Next</a></li></ul>
<h2 id="s2">6.1.1. Syntax<a href="#s2">¶</a></h2><p>Three parts separated by spaces.</p>
<p><a href="https://deb.debian.org/debian">https://deb.debian.org/debian</a></p></div>
<div class="navfooter"><table><tr><td>The Debian Administrator's Handbook</td></tr></table></div>
</body></html>"""


def test_html_boilerplate_is_left_out_by_structure(tmp_path):
    page = tmp_path / "apt.html"
    page.write_text(HANDBOOK_PAGE, encoding="utf-8")
    doc = _load(page)
    text = "\n\n".join(s.text for s in doc.sections)
    assert text == (
        "6.1. Filling in the sources.list File\n\nEach active line is a package source.\n\n"
        "6.1.1. Syntax\n\nThree parts separated by spaces.\n\nhttps://deb.debian.org/debian"
    )
    assert doc.sections[-1].heading_path == ("6.1. Filling in the sources.list File", "6.1.1. Syntax")
    assert doc.title == "Chapter 6. APT" and doc.encoding == "utf-8"


def test_html_title_falls_back_to_the_first_heading(tmp_path):
    page = tmp_path / "untitled.html"
    page.write_text("<html><body><h1>Fractions</h1><p>Halves.</p></body></html>", encoding="utf-8")
    assert _load(page).title == "Fractions"


def test_a_contents_only_page_is_still_read(tmp_path):
    page = tmp_path / "index.html"
    page.write_text('<body><div class="toctree-wrapper"><ul><li><a href="a.html">Intro</a></li></ul></div></body>')
    assert "Intro" in _load(page).sections[0].text


def test_deep_html_keeps_the_text_after_the_nesting(tmp_path):
    deep = tmp_path / "deep.html"
    deep.write_text("<html><body>" + "<div>" * 300 + "<p>Deep inside.</p>" + "</div>" * 300
                    + "<p>A later paragraph.</p><h2>Later</h2><p>The last words.</p></body></html>")  # fmt: skip
    text = "\n".join(s.text for s in _load(deep).sections)
    assert "Deep inside." in text and "A later paragraph." in text and "The last words." in text
    deeper = tmp_path / "deeper.html"
    deeper.write_text("<html><body>" + "<div>" * 3000 + "<p>x</p>" + "</div>" * 3000 + "<p>Lost?</p></body></html>")
    with pytest.raises(LoadError, match="nested too deeply") as info:
        _load(deeper)
    assert "deeper.html" in str(info.value) and info.value.hint


def test_epub_leaves_out_nonlinear_items_and_contents_documents(tmp_path):
    contents = "".join(f'<h2><a href="c{i}.xhtml">Chapter {i}</a></h2>' for i in range(1, 7))
    book = make_epub(
        tmp_path / "b.epub",
        [
            ("nav.xhtml", '<nav epub:type="toc"><ol><li><a href="c1.xhtml">One</a></li></ol></nav>'),
            ("toc.xhtml", "<h1>Contents</h1>" + contents),
            ("c1.xhtml", "<h1>Chapter 1</h1><p>English text.</p>"),
            ("de.xhtml", "<h1>Kapitel 1</h1><p>Deutscher Text.</p>"),
        ],
        nonlinear={3},
        nav=0,
    )
    doc = _load(book)
    assert [s.heading_path for s in doc.sections] == [("Chapter 1",)]
    assert doc.notes == [
        'left out 1 spine items marked linear="no" (OEBPS/text/de.xhtml)',
        "left out 2 table-of-contents documents (OEBPS/text/nav.xhtml, OEBPS/text/toc.xhtml)",
    ]


def test_text_encodings_nearly_ascii_is_western_and_recorded(tmp_path):
    cases = {
        "latin1.txt": ("NEWS\n\nThanks to Paul D. Smith and Ralf Kämpf for the fixes.\n" * 3, "latin-1", "cp1252"),
        "quotes.txt": ("He said \u201cyes\u201d \u2013 twice.\n", "cp1252", "cp1252"),
        "utf8.txt": ("Kämpf\n", "utf-8", "utf-8"),
    }
    for name, (text, write_as, read_as) in cases.items():
        (tmp_path / name).write_bytes(text.encode(write_as))
        doc = _load(tmp_path / name)
        assert doc.sections[0].text == text.strip() and doc.encoding == read_as, name
    assert _load(tmp_path / "latin1.txt").title == "NEWS"
    # Mostly high bytes: still the detector's guess (here Cyrillic).
    russian = "Привет, мир. Это русский текст, записанный в кодировке Windows-1251. " * 20
    (tmp_path / "ru.txt").write_bytes(russian.encode("cp1251"))
    doc = _load(tmp_path / "ru.txt")
    assert doc.sections[0].text == russian.strip() and doc.encoding == "cp1251"


def test_html_permalinks_nested_in_headings_and_cells_are_left_out_and_the_language_is_kept(tmp_path):
    page = tmp_path / "p.html"
    page.write_text(
        '<html lang="en-GB"><body><h2><span>Install<a class="headerlink" href="#install">¶</a></span></h2>'
        '<p>Run it.</p><table><tr><td>key<a href="#key">§</a></td><td>value</td></tr></table></body></html>',
        encoding="utf-8",
    )
    doc = _load(page)
    assert doc.language == "en"
    assert doc.sections[0].heading_path == ("Install",)
    assert doc.sections[0].text == "Install\n\nRun it.\n\nkey | value"


def test_language_detection_by_script_and_function_words():
    from ftstudio.knowledge.language import detect, normalise

    assert detect("what does lb config do in live-build") == "en"
    assert detect("wie konfiguriere ich das Netzwerk und die Quellen") == "de"
    assert detect("comment configurer les sources apt") == "fr"
    assert detect("lb config の使い方とオプションについて説明します") == "ja"
    assert detect("lb config") is None and detect("12 34") is None  # too little to tell
    assert (normalise("pt_BR"), normalise(" EN-us "), normalise("und"), normalise(None)) == ("pt", "en", None, None)
