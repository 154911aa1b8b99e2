"""`ftstudio ingest`, `ftstudio docs`, `ftstudio search`: documents into the project's knowledge store.

`search` imports only the store (sqlite3), so it starts fast; loaders and tokenizers load only for `ingest`.
Setting flags apply to this run; `--save` also stores them (the one rule of every command, see README).
"""

from pathlib import Path
from typing import Annotated

import typer

from ftstudio.cli.common import JsonOpt, RootOpt, SaveOpt, SetOpt, emit, err, out, overrides, progress_bar
from ftstudio.knowledge.settings import KnowledgeSettings
from ftstudio.knowledge.store import MAX_K
from ftstudio.project import Project

_FIELDS = KnowledgeSettings.model_fields


def _setting_help(name: str) -> str:
    return f"{_FIELDS[name].description} Default: the project's setting ({_FIELDS[name].default} unless changed)."


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest)
    app.command("docs")(docs)
    app.command("search")(search)


def ingest(
    name: Annotated[str, typer.Argument(help="Project name.")],
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (recursive) to ingest.", show_default=False)],
    chunk_tokens: Annotated[int | None, typer.Option(help=_setting_help("chunk_tokens"), show_default=False)] = None,
    overlap: Annotated[int | None, typer.Option(help=_setting_help("overlap"), show_default=False)] = None,
    set_: SetOpt = None,
    save: SaveOpt = False,
    root: RootOpt = None,
    json: JsonOpt = False,
) -> None:
    """Load PDF, DOCX, EPUB, HTML, Markdown and text files, cut them into chunks, and index them for search."""
    import ftstudio
    from ftstudio.requests import IngestRequest

    project = Project.open(name, root)
    changes = overrides({"chunk_tokens": chunk_tokens, "overlap": overlap}, set_)
    request = IngestRequest.build(paths=paths, overrides=changes, save=save)
    with progress_bar("Ingesting") as progress:
        result = ftstudio.ingest(project, request, progress=progress)

    def human() -> None:
        for doc in result.documents:
            if doc.status != "failed":
                out.print(f"{doc.status:9} {doc.chunks:6} chunks  {doc.path}", markup=False)
                for note in doc.notes:
                    out.print(f"{'':17} note: {note}", markup=False, highlight=False, soft_wrap=True)
        c = result.counts()
        out.print(
            f"{c['added']} added, {c['updated']} updated, {c['unchanged']} unchanged, {c['failed']} failed "
            f"in {result.seconds:.1f} s (tokens counted by {result.token_counter})",
            markup=False,
        )

    emit(result.to_dict(), json, human)
    if result.failed:
        for doc in result.failed:
            err.print(f"failed: {doc.error}", markup=False, highlight=False, soft_wrap=True)
            if doc.hint:
                err.print(f"  → {doc.hint}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1)


def docs(
    name: Annotated[str, typer.Argument(help="Project name.")],
    remove: Annotated[
        list[str] | None, typer.Option("--remove", help="Remove this document (path or id) and its chunks.")
    ] = None,
    root: RootOpt = None,
    json: JsonOpt = False,
) -> None:
    """List the project's documents with their chunk counts, or remove some with --remove."""
    from ftstudio.knowledge.store import KnowledgeStore

    project = Project.open(name, root)
    with KnowledgeStore.open(project.knowledge_db) as store:
        with store.batch():  # all or nothing: one name that is not there removes none
            removed = [store.remove_document(p).to_dict() for p in remove or []]
        documents = [d.to_dict() for d in store.documents()]

    def human() -> None:
        for d in removed:
            out.print(f"removed {d['path']} ({d['chunks']} chunks)", markup=False)
        if not documents:
            out.print(f"No documents yet: `ftstudio ingest {name} PATH...` adds some.", markup=False)
        for d in documents:
            encoding = f"  ({d['encoding']})" if d["encoding"] else ""
            out.print(
                f"{d['id']:5}  {d['type']:8} {d['chunks']:6} chunks {d['tokens']:9} tokens  {d['path']}{encoding}",
                markup=False,
            )

    emit({"documents": documents, "removed": removed}, json, human)


def search(
    name: Annotated[str, typer.Argument(help="Project name.")],
    query: Annotated[str, typer.Argument(help="Any text; words are matched (English word forms too), ranked by BM25.")],
    k: Annotated[str, typer.Option("-k", help=f"How many results (1 to {MAX_K}).")] = "5",
    root: RootOpt = None,
    json: JsonOpt = False,
) -> None:
    """Full-text search of the project's chunks: the best matches with their snippet and where they come from."""
    import ftstudio
    from ftstudio.errors import BadInput

    # Read as text and checked here: typer would turn a huge number into an OverflowError traceback.
    if not (k.isascii() and k.isdigit() and 1 <= int(k) <= MAX_K):
        raise BadInput(f"-k {k!r}: must be a whole number from 1 to {MAX_K}", hint="for example -k 10")
    hits = ftstudio.search(Project.open(name, root), query=query, k=int(k))
    results = [
        {
            "chunk_id": h.chunk.id,
            "document": h.chunk.document,
            "location": h.chunk.location,
            "heading_path": list(h.chunk.heading_path),
            "page_start": h.chunk.page_start,
            "page_end": h.chunk.page_end,
            "ordinal": h.chunk.ordinal,
            "score": round(h.score, 4),
            "snippet": h.snippet,
            "text": h.chunk.text,
        }
        for h in hits
    ]

    def human() -> None:
        if not results:
            out.print("No matches.", markup=False)
        for i, r in enumerate(results, 1):
            where = f" ({r['location']})" if r["location"] else ""
            out.print(f"{i}. {r['document']}{where}  score {r['score']:.2f}", markup=False)
            out.print("   " + " ".join(r["snippet"].split()), markup=False)

    emit(results, json, human)
