"""Real documents from Debian's documentation packages (see corpus.py): clean chunks, and search that finds the
answers it should. Skipped, naming what is missing, on a machine without the packages (`./install.sh dev`)."""

from __future__ import annotations

import re
from pathlib import Path

import corpus
import pytest

from ftstudio.knowledge.ingest import ingest
from ftstudio.knowledge.store import KnowledgeStore
from ftstudio.project import Project

pytestmark = pytest.mark.slow

# Without these the corpus lacks a whole format: skip rather than pass on what is left.
NEEDED = ("debian-policy", "developers-reference", "debian-handbook", "live-manual-epub")


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    absent = [p for p in NEEDED if not corpus.installed(p)]
    if absent:
        pytest.skip(f"Debian documentation packages not installed: {', '.join(absent)} (run ./install.sh dev)")
    tmp = tmp_path_factory.mktemp("corpus")
    folder = tmp / "corpus"
    missing = corpus.build(folder)
    project = Project.create("corpus", tmp / "ws")
    report = ingest(project, [folder])
    store = KnowledgeStore.open(project.knowledge_db)
    yield report, store, folder.resolve(), missing
    store.close()


def test_every_file_is_read_with_a_title(ingested):
    report, store, _, _ = ingested
    assert not report.failed, [d.error for d in report.failed]
    assert len(report.documents) > 150
    assert {d.type for d in store.documents()} >= {"pdf", "html", "epub", "text"}
    assert all(d.title for d in store.documents())
    titles = {d.path.rsplit("/", 1)[1]: d.title for d in store.documents()}
    assert titles["policy.pdf"] == "Debian Policy Manual" and titles["live-manual.epub"] == "Live Systems Manual"
    assert titles["GPL-3.txt"] == "GNU GENERAL PUBLIC LICENSE"


def test_chunks_are_clean(ingested):
    _, store, folder, _ = ingested
    figures = corpus.figures(store, folder)
    assert figures["control_characters"] == 0
    assert figures["navigation_chunks"] == 0
    assert figures["running_line_repeats"] == 0
    assert figures["heading_only_share"] <= 0.01
    assert figures["other_language_chunks_in_epubs"] == 0
    chunks = store.get_chunks(store.chunk_ids())
    assert not [
        c.text[:80] for c in chunks if "Download the ebook" in c.text or re.search(r"\bPrev\b.*\bNext\b", c.text)
    ]
    # Hyphenated words across PDF line ends are whole again, and found by search.
    assert store.search("distribution")[0].score > 0
    assert not any("dis-\ntribution" in c.text or "dis\x02tribution" in c.text for c in chunks)


def test_search_finds_the_known_answers_first(ingested):
    _, store, folder, _ = ingested
    figures = corpus.figures(store, folder)
    assert figures["top5_document"] == figures["questions"], figures["misses"]
    assert figures["top1_document"] >= figures["questions"] - 1, figures["misses"]
    assert figures["top1_section"] >= figures["questions"] - 2, figures["misses"]


def test_latin1_files_are_decoded_as_latin1(ingested):
    _, store, folder, _ = ingested
    found = {d.path.rsplit("/", 1)[1]: d for d in store.documents() if "/latin1/" in d.path}
    if not found:
        pytest.skip("none of the Latin-1 files' packages (make, psmisc, ed, groff-base) is installed")
    for name, doc in found.items():
        assert doc.encoding in ("cp1252", "latin-1"), (name, doc.encoding)
        text = " ".join(c.text for c in store.document_chunks(doc.id))
        assert corpus.LATIN1[name] in text, name


def test_epub_translations_and_contents_pages_are_left_out(ingested):
    report, store, _, _ = ingested
    result = next(d for d in report.documents if d.path.endswith("live-manual-multilingual.epub"))
    assert any('linear="no"' in note and "15 spine items" in note for note in result.notes), result.notes
    assert any("table-of-contents" in note for note in result.notes), result.notes
    # The English manual's text is under its sections, not under a contents page's headings.
    chunks = store.document_chunks(result.path)
    assert sum(1 for c in chunks if len(c.text) < 80) <= 0.02 * len(chunks)
    first = next(c for c in chunks if c.heading_path == ("1. About this manual",))
    assert "This manual serves as a single access point" in first.text


def test_pdf_contents_pages_are_named_and_left_out(ingested):
    report, store, _, _ = ingested
    result = next(d for d in report.documents if d.path.endswith("pdf/policy.pdf"))
    assert any("contents or index pages" in note for note in result.notes), result.notes
    assert not any(re.search(r"(?:\. ){5,}", c.text) for c in store.document_chunks(result.path))


def test_documents_of_kinds_not_tuned_on(ingested):
    """R's texinfo PDFs and HTML, PostgreSQL's and git's HTML, the Live Systems Manual's pages in four languages."""
    _, store, folder, _ = ingested
    docs = [d for d in store.documents() if any(m in d.path for m in ("/R-", "/postgresql/", "/git/", "/live-manual/"))]
    if len(docs) < 10:
        pytest.skip("r-doc-pdf, r-doc-html, postgresql-doc-15, git-doc or live-manual-html not installed")
    # Every document's language is recorded: declared or detected (the manual's translations declare none).
    languages = {d.path.rsplit("/", 1)[1]: d.language for d in docs}
    assert all(languages.values()), languages
    assert {languages[f"overview-of-tools.{lang}.html"] for lang in ("en", "ja", "fr", "ca")} == {
        "en",
        "ja",
        "fr",
        "ca",
    }
    chunks = [c for d in docs for c in store.document_chunks(d.id)]
    assert not [c.text[:80] for c in chunks if re.search("[¶§🔗]", c.text)]  # permalink glyphs
    # No running head in more than a small share of a PDF's chunks ("Chapter 1: Introduction and preliminaries").
    for d in (d for d in docs if d.type == "pdf"):
        mine = store.document_chunks(d.id)
        heads = sum(1 for c in mine if re.search(r"^Chapter \d+: .* \d+$", c.text, re.M))
        assert heads <= 0.02 * len(mine), (d.path, heads, len(mine))
    # Asked in English, the English page comes first, and the translations are still found further down.
    hits = store.search("what does lb config do in live-build", k=20)
    assert hits[0].chunk.document.endswith(".en.html") or "live-manual" in hits[0].chunk.document
    assert not hits[0].chunk.document.endswith((".ja.html", ".fr.html", ".ca.html"))
    assert any(h.chunk.document.endswith(".ja.html") for h in store.search("lb config", k=20))
    # A manual that explains sources.list ranks above the developers' reference.
    top = [Path(h.chunk.document).relative_to(folder).as_posix() for h in store.search("how to configure apt sources")]
    assert "devref" not in top[0] and any(m in top[0] for m in ("debian-reference", "handbook", "faq")), top
