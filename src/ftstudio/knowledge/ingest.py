"""Ingest: files and folders → loaded, chunked, and written to the project's knowledge store.

One file at a time (the corpus is never held in memory); each file is all or nothing, and files are committed in
batches of about half a second, so a crash loses at most the last batch's whole files. A file whose content hash
and chunking settings are unchanged is skipped; a changed one has its chunks replaced. A file that fails is named
with its reason and the others go on; a path that does not exist is bad input before anything is written.

Hostile input fails by name too: only regular files are read, opened without blocking and within the size cap
(see safe_read), and a link inside a folder is followed only when it points inside that folder.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ftstudio.errors import NotFound
from ftstudio.knowledge.chunking import chunk_sections
from ftstudio.knowledge.language import detect
from ftstudio.knowledge.loaders import LoadError, is_supported, load_document
from ftstudio.knowledge.loaders.html import RepeatedBlocks
from ftstudio.knowledge.safe_read import current_limits, read_regular, use_limits
from ftstudio.knowledge.settings import KnowledgeSettings
from ftstudio.knowledge.store import KnowledgeStore, NewDocument
from ftstudio.knowledge.tokens import TokenCounter, resolve_counter
from ftstudio.progress import ProgressFn, report
from ftstudio.project import Project

STATUSES = ("added", "updated", "unchanged", "failed")
# Files are committed in batches of about this long (see `ingest`): one commit per file made FTS5 write and merge an
# index segment per file, which was most of the ingest time.
BATCH_SECONDS = 0.5


@dataclass(frozen=True)
class FileResult:
    """What happened to one file: `status` is added, updated, unchanged or failed (then `error` says why)."""

    path: str
    status: str
    chunks: int = 0
    error: str | None = None
    type: str | None = None
    hint: str | None = None  # what to do about the error
    notes: list[str] = field(default_factory=list)  # parts of the file left out on purpose, and why


@dataclass(frozen=True)
class IngestReport:
    documents: list[FileResult]
    skipped: list[str] = field(default_factory=list)  # files in folders with an extension no loader reads
    token_counter: str = ""
    chunk_tokens: int = 0
    overlap: int = 0
    seconds: float = 0.0

    @property
    def failed(self) -> list[FileResult]:
        return [d for d in self.documents if d.status == "failed"]

    def counts(self) -> dict[str, int]:
        return {s: sum(1 for d in self.documents if d.status == s) for s in STATUSES}

    def to_dict(self) -> dict:
        return {
            "documents": [asdict(d) for d in self.documents],
            "counts": self.counts(),
            "chunks": sum(d.chunks for d in self.documents if d.status != "failed"),
            "skipped": self.skipped,
            "token_counter": self.token_counter,
            "chunk_tokens": self.chunk_tokens,
            "overlap": self.overlap,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class Collected:
    """What `collect_files` found: files to read, files left out, and entries refused (each a failed result)."""

    files: list[Path]
    skipped: list[str]
    refused: list[FileResult]
    links: dict[Path, str] = field(default_factory=dict)  # a file reached through a link: how messages name it


def collect_files(paths: Iterable[Path | str]) -> Collected:
    """The files to ingest (folders walked recursively, sorted, hidden entries skipped), those left out, and those
    refused.

    A file named directly is always tried (an unsupported one then fails by name), links included; inside folders,
    files no loader reads are only listed as skipped, and a link is followed only when it points inside the folder
    being ingested (one pointing out is refused, named as found). Raises NotFound (bad input, nothing changed) for
    a path that does not exist.
    """
    paths = [Path(p).expanduser() for p in paths]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise NotFound(f"no such file or folder: {', '.join(missing)}", hint="check the path; nothing was ingested")
    found = Collected([], [], [])
    seen: set[Path] = set()
    for p in paths:
        if not p.is_dir():
            _add(p, found, seen)
            continue
        top = p.resolve()
        for folder, dirs, names in os.walk(p):
            for d in dirs:
                link = Path(folder, d)
                if not d.startswith(".") and link.is_symlink() and not link.resolve().is_relative_to(top):
                    found.refused.append(_outside(link, p))
            # A folder link pointing inside is not walked: what it points to is walked where it lies.
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not Path(folder, d).is_symlink())
            for name in sorted(names):
                f = Path(folder, name)
                if name.startswith("."):
                    continue
                if not is_supported(f):
                    found.skipped.append(str(f.resolve()))
                elif f.is_symlink() and not f.exists():
                    broken = f"{f}: a broken link (to {os.readlink(f)})"
                    found.refused.append(FileResult(str(f), "failed", error=broken))
                elif f.is_symlink() and not f.resolve().is_relative_to(top):
                    found.refused.append(_outside(f, p))
                else:
                    _add(f, found, seen)
    return found


def _outside(link: Path, folder: Path) -> FileResult:
    return FileResult(
        str(link),
        "failed",
        error=f"{link}: a link to {link.resolve()}, outside the folder being ingested ({folder})",
        hint="links are followed only inside the folder; pass the file itself to ingest it",
    )


def _add(f: Path, found: Collected, seen: set[Path]) -> None:
    # A dangling link keeps its own name (resolving it would name a file that is not there).
    resolved = f.resolve() if f.exists() else Path(os.path.abspath(f))
    if resolved not in seen:
        seen.add(resolved)
        found.files.append(resolved)
        if f.is_symlink():
            found.links[resolved] = f"{f} (a link to {resolved})"


def ingest(
    project: Project,
    paths: Iterable[Path | str],
    settings: KnowledgeSettings | None = None,
    progress: ProgressFn | None = None,
) -> IngestReport:
    """Ingest files and folders into `project`'s knowledge store and report what happened to each file.

    `settings` defaults to the project's own `[knowledge]` settings. Raises NotFound for a path that does not exist
    (before anything is written); a file that cannot be read is reported as failed, never raised.
    """
    started = time.perf_counter()
    project_settings = project.settings()
    settings = settings or project_settings.knowledge
    counter = resolve_counter(settings.tokenizer, project_settings.base_model.model)
    found = collect_files(paths)
    files, skipped = found.files, found.skipped
    results: list[FileResult] = []
    repeated = RepeatedBlocks()
    with KnowledgeStore.open(project.knowledge_db) as store, use_limits(settings.read_limits()):
        # Whole files are grouped into batches of about BATCH_SECONDS, one transaction each (every file a savepoint
        # of it): a crash loses at most the last uncommitted batch of whole files. `done` counts committed files.
        while len(results) < len(files):
            batch: list[FileResult] = []
            opened = time.monotonic()
            with store.batch():
                for path in files[len(results) :]:
                    report(progress, "ingest", len(results), len(files), path.name)
                    batch.append(ingest_file(store, path, counter, settings, repeated, found.links.get(path)))
                    if time.monotonic() - opened >= BATCH_SECONDS:
                        break
            results.extend(batch)
        report(progress, "ingest", len(files), len(files), "done")
    seconds = time.perf_counter() - started
    documents = found.refused + results
    return IngestReport(documents, skipped, counter.name, settings.chunk_tokens, settings.overlap, seconds)


def ingest_file(
    store: KnowledgeStore,
    path: Path,
    counter: TokenCounter,
    settings: KnowledgeSettings,
    repeated: RepeatedBlocks | None = None,
    shown: str | None = None,
) -> FileResult:
    """Ingest one file, all or nothing (its own transaction, or a savepoint inside `store.batch()`); failures come
    back as a `failed` result naming the reason (and the file as `shown`, when it was reached through a link).
    `repeated`: boilerplate seen on the ingest's earlier HTML pages.

    Only a regular file is read, at most `max_document_mb` of it (see safe_read)."""
    key = str(path)
    try:
        data, stat = read_regular(path, current_limits().max_bytes, shown)
    except LoadError as exc:
        return FileResult(key, "failed", error=exc.message, hint=exc.hint)
    sha = hashlib.sha256(data).hexdigest()
    existing = store.document(key)
    if (
        existing is not None
        and existing.sha256 == sha
        and existing.token_counter == counter.name
        and (existing.chunk_tokens, existing.overlap) == (settings.chunk_tokens, settings.overlap)
    ):
        return FileResult(key, "unchanged", existing.chunks, type=existing.type)
    try:
        loaded = load_document(path, data)
        del data  # the bytes are no longer needed while the chunks are made
        if repeated is not None and loaded.type == "html":
            loaded.sections = repeated.filter(path, loaded.sections)
        chunks = chunk_sections(loaded.sections, counter, settings.chunk_tokens, settings.overlap)
        if not chunks:
            raise LoadError(path, "no text to ingest (the document is empty)")
        doc = NewDocument(
            path=key,
            sha256=sha,
            type=loaded.type,
            size=stat.st_size,
            mtime=stat.st_mtime,
            token_counter=counter.name,
            chunk_tokens=settings.chunk_tokens,
            overlap=settings.overlap,
            # Every document has a title: its own, else its file name.
            title=loaded.title or path.stem.replace("_", " "),
            encoding=loaded.encoding,
            meta=loaded.meta,
            # The language the document declares, else the one its text is written in (search prefers the query's).
            language=loaded.language or detect("\n".join(s.text for s in loaded.sections[:50])),
        )
        info = store.replace_document(doc, chunks)
    except LoadError as exc:
        return FileResult(key, "failed", error=_with_kept(exc.message, existing), hint=exc.hint)
    except Exception as exc:  # one bad file must not stop the others: a parser's own crash is this file's failure
        return FileResult(
            key, "failed", error=_with_kept(f"{path}: could not be read ({type(exc).__name__}: {exc})", existing)
        )
    return FileResult(key, "updated" if existing else "added", info.chunks, type=loaded.type, notes=loaded.notes)


def _with_kept(message: str, existing) -> str:
    return message + (" (the version ingested before is kept)" if existing is not None else "")
