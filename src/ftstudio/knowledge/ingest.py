"""Ingest: files and folders → loaded, chunked, and written to the project's knowledge store.

One file at a time (the corpus is never held in memory); each file is all or nothing, and files are committed in
batches of about half a second, so a crash loses at most the last batch's whole files. A file whose content hash
and chunking settings are unchanged is skipped; a changed one has its chunks replaced. A file that fails is named
with its reason and the others go on; a path that does not exist is bad input before anything is written.
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
from ftstudio.knowledge.loaders import LoadError, is_supported, load_document
from ftstudio.knowledge.loaders.html import RepeatedBlocks
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


def collect_files(paths: Iterable[Path | str]) -> tuple[list[Path], list[str]]:
    """The files to ingest (folders walked recursively, sorted, hidden entries skipped) and those left out.

    A file named directly is always tried (an unsupported one then fails by name); inside folders, files no loader
    reads are only listed as skipped. Raises NotFound (bad input, nothing changed) for a path that does not exist.
    """
    paths = [Path(p).expanduser() for p in paths]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise NotFound(f"no such file or folder: {', '.join(missing)}", hint="check the path; nothing was ingested")
    files: list[Path] = []
    skipped: list[str] = []
    seen: set[Path] = set()
    for p in paths:
        if p.is_dir():
            for folder, dirs, names in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(names):
                    f = Path(folder, name)
                    if name.startswith("."):
                        continue
                    if is_supported(f):
                        _add(f, files, seen)
                    else:
                        skipped.append(str(f.resolve()))
        else:
            _add(p, files, seen)
    return files, skipped


def _add(f: Path, files: list[Path], seen: set[Path]) -> None:
    # A dangling link keeps its own name (resolving it would name a file that is not there).
    resolved = f.resolve() if f.exists() else Path(os.path.abspath(f))
    if resolved not in seen:
        seen.add(resolved)
        files.append(resolved)


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
    files, skipped = collect_files(paths)
    results: list[FileResult] = []
    repeated = RepeatedBlocks()
    with KnowledgeStore.open(project.knowledge_db) as store:
        # Whole files are grouped into batches of about BATCH_SECONDS, one transaction each (every file a savepoint
        # of it): a crash loses at most the last uncommitted batch of whole files. `done` counts committed files.
        while len(results) < len(files):
            batch: list[FileResult] = []
            opened = time.monotonic()
            with store.batch():
                for path in files[len(results) :]:
                    report(progress, "ingest", len(results), len(files), path.name)
                    batch.append(ingest_file(store, path, counter, settings, repeated))
                    if time.monotonic() - opened >= BATCH_SECONDS:
                        break
            results.extend(batch)
        report(progress, "ingest", len(files), len(files), "done")
    return IngestReport(
        results, skipped, counter.name, settings.chunk_tokens, settings.overlap, time.perf_counter() - started
    )


def ingest_file(
    store: KnowledgeStore,
    path: Path,
    counter: TokenCounter,
    settings: KnowledgeSettings,
    repeated: RepeatedBlocks | None = None,
) -> FileResult:
    """Ingest one file, all or nothing (its own transaction, or a savepoint inside `store.batch()`); failures come
    back as a `failed` result naming the reason. `repeated`: boilerplate seen on the ingest's earlier HTML pages."""
    key = str(path)
    try:
        data = path.read_bytes()
        stat = path.stat()
    except OSError as exc:
        return FileResult(key, "failed", error=f"{path}: unreadable ({exc.strerror or exc})")
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
