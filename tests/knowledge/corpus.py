"""A corpus of real documents from Debian's documentation packages, and the figures that say how clean its chunks
are and how well search finds known answers in it.

Nothing of it is committed: `build` copies (and gunzips) the files from where the packages install them
(`./install.sh dev` installs the packages) into a folder, makes DOCX files from real HTML and Markdown with pandoc,
and an EPUB whose other-language chapters are marked `linear="no"` from two real editions of the Live Systems
Manual. Parts whose package is missing are left out and named.

    PYTHONPATH=src .venv/bin/python tests/knowledge/corpus.py      # build, ingest, print the figures
"""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess
import sys
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

DOC = Path("/usr/share/doc")


@dataclass(frozen=True)
class Part:
    package: str  # the Debian package that installs it
    source: str  # an absolute path, or a folder whose *.html files are taken
    name: str  # where it goes in the corpus folder


PARTS = [
    # PDF manuals (LaTeX, DocBook and Sphinx made), some gzip-compressed by Debian.
    Part("debian-policy", "/usr/share/doc/debian-policy/policy.pdf.gz", "pdf/policy.pdf"),
    Part("developers-reference", "/usr/share/developers-reference/developers-reference.pdf", "pdf/devref.pdf"),
    Part("maint-guide", "/usr/share/doc/maint-guide/maint-guide.en.pdf", "pdf/maint-guide.pdf"),
    Part("debian-faq", "/usr/share/doc/debian/FAQ/debian-faq.en.pdf.gz", "pdf/debian-faq.pdf"),
    Part("debian-reference-en", "/usr/share/debian-reference/debian-reference.en.pdf", "pdf/debian-reference.pdf"),
    # HTML: a publican handbook (div#banner, ul.docnav), DocBook (navheader/navfooter), Sphinx (¶ permalinks).
    Part("debian-handbook", "/usr/share/doc/debian-handbook/html/en-US", "html/handbook"),
    Part("debian-faq", "/usr/share/doc/debian/FAQ", "html/faq"),
    Part("debian-policy", "/usr/share/doc/debian-policy/policy.html", "html/policy"),
    Part("developers-reference", "/usr/share/developers-reference", "html/devref"),
    # EPUB: Sphinx-made books and the Live Systems Manual (a table-of-contents page of h1-h6 headings).
    Part("debian-policy", "/usr/share/doc/debian-policy/policy.epub", "epub/policy.epub"),
    Part("developers-reference", "/usr/share/developers-reference/developers-reference.epub", "epub/devref.epub"),
    Part("live-manual-epub", "/usr/share/doc/live-manual/epub/live-manual.en.epub", "epub/live-manual.epub"),
    # Text: licences, READMEs, NEWS and changelogs; the last four are Latin-1 (file(1) says ISO-8859).
    Part("base-files", "/usr/share/common-licenses/GPL-3", "text/GPL-3.txt"),
    Part("base-files", "/usr/share/common-licenses/Apache-2.0", "text/Apache-2.0.txt"),
    Part("debian-policy", "/usr/share/doc/debian-policy/README.txt.gz", "text/policy-README.txt"),
    Part("make", "/usr/share/doc/make/NEWS.gz", "latin1/make-NEWS.txt"),
    Part("psmisc", "/usr/share/doc/psmisc/changelog.gz", "latin1/psmisc-changelog.txt"),
    Part("ed", "/usr/share/doc/ed/AUTHORS", "latin1/ed-AUTHORS.txt"),
    Part("groff-base", "/usr/share/doc/groff-base/NEWS.gz", "latin1/groff-NEWS.txt"),
    # Markdown.
    Part("git", "/usr/share/doc/git/README.md", "md/git-README.md"),
    # Kinds the clean-up was not tuned on: texinfo (TeX) PDFs of R with chapter running heads, texinfo HTML with
    # "¶" copiable anchors, PostgreSQL's DocBook HTML, git's AsciiDoc HTML, and the Live Systems Manual's HTML in
    # English and three of its translations (no lang attribute: their language is detected).
    Part("r-doc-pdf", "/usr/share/R/doc/manual/R-intro.pdf", "pdf/R-intro.pdf"),
    Part("r-doc-pdf", "/usr/share/R/doc/manual/R-FAQ.pdf", "pdf/R-FAQ.pdf"),
    Part("r-doc-html", "/usr/share/R/doc/manual/R-intro.html", "html/r/R-intro.html"),
    *(
        Part("postgresql-doc-15", f"/usr/share/doc/postgresql-doc-15/html/{page}.html", f"html/postgresql/{page}.html")
        for page in ("sql-select", "tutorial-join", "runtime-config-connection")
    ),
    *(
        Part("git-doc", f"/usr/share/doc/git-doc/{page}.html", f"html/git/{page}.html")
        for page in ("git-config", "gittutorial", "git-rebase")
    ),
    *(
        Part(
            "live-manual-html",
            f"/usr/share/doc/live-manual/html/live-manual/{page}.{lang}.html",
            f"html/live-manual/{page}.{lang}.html",
        )
        for page in ("overview-of-tools", "managing-a-configuration")
        for lang in ("en", "ja", "fr", "ca")
    ),  # fmt: skip
]
# Latin-1 files and a word each holds that a wrong guess (big5, cp850) garbles.
LATIN1 = {
    "make-NEWS.txt": "Kämpf",
    "psmisc-changelog.txt": "Léger",
    "ed-AUTHORS.txt": "François",
    "groff-NEWS.txt": "Jürgen",
}
# DOCX made by pandoc: (package, source, name).
DOCX = [
    Part("debian-policy", "/usr/share/doc/debian-policy/policy.html/ch-source.html", "docx/policy-source.docx"),
    Part("git", "/usr/share/doc/git/README.md", "docx/git-README.docx"),
]
# The multilingual EPUB: the English Live Systems Manual with the other editions' chapters as linear="no" items.
LIVE_MANUALS = Path("/usr/share/doc/live-manual/epub")
OTHER_EDITIONS = ("de", "fr", "it", "ja", "pl")


def installed(package: str) -> bool:
    return (DOC / package).exists()


def build(folder: Path) -> list[str]:
    """Write the corpus into `folder`; return what was left out (missing packages or tools), said as text."""
    missing = []
    for part in PARTS:
        source = Path(part.source)
        if not source.exists():
            missing.append(f"{part.name} (package {part.package} not installed)")
            continue
        target = folder / part.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            target.mkdir(exist_ok=True)
            # *.en.html pages have an untagged twin as a link (index.html -> index.en.html): one of each.
            for page in sorted(source.glob("*.html")):
                if not page.is_symlink():
                    shutil.copyfile(page, target / page.name)
        elif source.suffix == ".gz":
            target.write_bytes(gzip.decompress(source.read_bytes()))
        else:
            shutil.copyfile(source, target)
    pandoc = shutil.which("pandoc")
    for part in DOCX:
        if pandoc is None or not Path(part.source).exists():
            missing.append(f"{part.name} ({'pandoc' if pandoc is None else 'package ' + part.package} not installed)")
            continue
        (folder / part.name).parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([pandoc, part.source, "-o", str(folder / part.name)], check=True, capture_output=True)
    if (LIVE_MANUALS / "live-manual.en.epub").exists():
        multilingual_epub(folder / "epub" / "live-manual-multilingual.epub")
    else:
        missing.append("epub/live-manual-multilingual.epub (package live-manual-epub not installed)")
    return missing


def multilingual_epub(target: Path) -> Path:
    """The English Live Systems Manual with the chapters of other editions added to its spine as linear="no"."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(LIVE_MANUALS / "live-manual.en.epub") as en, zipfile.ZipFile(target, "w") as out:
        opf = en.read("OEBPS/content.opf").decode("utf-8")
        items, refs = [], []
        for lang in OTHER_EDITIONS:
            with zipfile.ZipFile(LIVE_MANUALS / f"live-manual.{lang}.epub") as other:
                for name in ("about-manual.xhtml", "installation.xhtml", "the-basics.xhtml"):
                    out.writestr(f"OEBPS/{lang}/{name}", other.read(f"OEBPS/{name}"))
                    items.append(f'<item id="{lang}-{name}" href="{lang}/{name}" media-type="application/xhtml+xml"/>')
                    refs.append(f'<itemref idref="{lang}-{name}" linear="no"/>')
        opf = opf.replace("</manifest>", "\n".join(items) + "</manifest>").replace(
            "</spine>", "\n".join(refs) + "</spine>"
        )
        for info in en.infolist():
            out.writestr(info, opf if info.filename == "OEBPS/content.opf" else en.read(info))
    return target


# Questions whose answer is known: (question, documents holding the answer (names contain one of these), words the
# answer's section heading holds, or None).
QUESTIONS = [
    ("how is the name Debian pronounced", ("basic-defs", "debian-faq"), "pronounce"),
    ("what priority levels can a package have", ("policy", "ch-archive"), "priorities"),
    ("syntax of the sources.list file", ("handbook/apt", "handbook/sect.apt"), "sources.list"),
    ("may maintainer scripts prompt the user", ("policy", "ch-binary"), "prompting"),
    ("what is a virtual package", ("policy", "ch-binary", "ch-relationships", "faq"), "virtual"),
    ("how do I report a bug in Debian", ("reportbug", "handbook", "faq", "devref"), "bug"),
    ("build a live system image with lb build", ("live-manual",), None),
    ("how to become a Debian developer new member process", ("devref", "faq"), "member"),
    ("what goes into the debian/changelog file", ("maint-guide", "policy", "ch-source", "devref"), "changelog"),
    ("configure a network interface with a static IP address", ("handbook", "debian-reference"), "network"),
    ("permission to copy and distribute modified versions under the GPL", ("GPL-3",), None),
    ("what does the Apache licence say about patent grants", ("Apache-2.0",), None),
    ("what is the Filesystem Hierarchy Standard /usr/local for", ("policy", "handbook", "debian-reference"), None),
    ("upload a package to the security archive", ("devref",), "security"),
    ("Debian Social Contract and free software guidelines", ("faq", "handbook", "policy", "devref"), None),
    # Asked in English, answered by the English pages first, though the translations hold the same commands.
    ("what does lb config do in live-build", (".en.html", "live-manual.epub", "live-manual-multilingual"), None),
    ("how to configure apt sources", ("debian-reference", "handbook"), None),
    ("how do I join two tables in a SELECT query", ("postgresql",), None),
    ("how to edit a git config variable", ("git/git-config",), None),
]

_NAV_LINE = re.compile(
    r"^(?:prev(?:ious)?|next|up|home|download the ebook|table of contents|contents)$|"
    r"^(?:prev(?:ious)?\s+)?(?:up\s+)?(?:home\s+)?next$|¶|Debian Policy Manual, Release \d",
    re.I | re.M,
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")
# Japanese kana, Cyrillic, or common words of the other editions' languages (German, French, Italian, Polish).
_OTHER_LANGUAGE = re.compile(r"[\u3040-\u30ff\u0400-\u04ff]|\b(?:und|nicht|werden|vous|être|della|sono|się|jest)\b")


def figures(store, folder: Path) -> dict:
    """The cleanliness and search figures of an ingested corpus (see the module docstring)."""
    chunks = store.get_chunks(store.chunk_ids())
    docs = {d.id: d for d in store.documents()}
    n = len(chunks)
    heading_only = sum(1 for c in chunks if c.heading_path and _is_heading_only(c))
    nav = [c for c in chunks if _NAV_LINE.search(c.text)]
    control = sum(len(_CONTROL.findall(c.text)) for c in chunks)
    # Lines repeated at the start or end of many chunks of one PDF: running headers that got through.
    running = 0
    for doc in (d for d in docs.values() if d.type == "pdf"):
        edges = Counter()
        mine = [c for c in chunks if c.document_id == doc.id]
        for c in mine:
            lines = [line for line in c.text.split("\n") if line.strip()]
            heading = c.heading_path[-1] if c.heading_path else "\0"
            edges.update(
                {re.sub(r"\d+", "#", line) for line in lines[:1] + lines[-1:] if len(line) > 12 and heading not in line}
            )
        running += sum(k for line, k in edges.items() if k >= max(5, len(mine) // 10))
    top1 = top5 = section1 = 0
    misses = []
    for question, holders, heading in QUESTIONS:
        hits = store.search(question, k=5)
        names = [str(Path(h.chunk.document).relative_to(folder)) for h in hits]
        ok = [any(m in name for m in holders) for name in names]
        top1 += bool(ok and ok[0])
        top5 += any(ok)
        if heading is None:
            section1 += bool(ok and ok[0])
        else:
            section1 += bool(ok and ok[0] and heading.lower() in " ".join(hits[0].chunk.heading_path).lower())
        if not (ok and ok[0]):
            misses.append((question, names[:3]))
    epubs = {d.id for d in docs.values() if d.type == "epub"}
    other_language = sum(1 for c in chunks if c.document_id in epubs and len(_OTHER_LANGUAGE.findall(c.text)) >= 2)
    return {
        "documents": len(docs),
        "chunks": n,
        "control_characters": control,
        "navigation_chunks": len(nav),
        "running_line_repeats": running,
        "heading_only_share": round(heading_only / max(1, n), 4),
        "untitled_documents": sum(1 for d in docs.values() if not d.title),
        "other_language_chunks_in_epubs": other_language,
        "questions": len(QUESTIONS),
        "top1_document": top1,
        "top5_document": top5,
        "top1_section": section1,
        "misses": misses,
    }


def _is_heading_only(chunk) -> bool:
    text = " ".join(chunk.text.split()).lstrip("# ").casefold()
    return len(text) <= len(chunk.heading_path[-1]) + 12 and text.endswith(chunk.heading_path[-1].casefold())


def main() -> None:
    import json
    import tempfile
    import time

    from ftstudio.knowledge.ingest import ingest
    from ftstudio.knowledge.store import KnowledgeStore
    from ftstudio.project import Project

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp, "corpus")
        missing = build(folder)
        for m in missing:
            print("left out:", m, file=sys.stderr)
        project = Project.create("corpus", Path(tmp, "ws"))
        started = time.perf_counter()
        report = ingest(project, [folder])
        print(f"ingested {len(report.documents)} files in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        for d in report.failed:
            print("failed:", d.error, file=sys.stderr)
        with KnowledgeStore.open(project.knowledge_db) as store:
            print(json.dumps(figures(store, folder.resolve()), indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
