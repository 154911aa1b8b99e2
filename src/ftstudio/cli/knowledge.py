"""`ftstudio docs` and `ftstudio search`: the project's knowledge store (`ftstudio ingest` fills it).

Both read the store (sqlite3) and import no settings model, so they start fast.
"""

from pathlib import Path

import click

from ftstudio.cli.common import emit, json_option, out, root_option
from ftstudio.knowledge.store import MAX_K
from ftstudio.project import Project


@click.command("docs")
@click.argument("name", help="Project name.")
@click.option("--remove", multiple=True, help="Remove this document (path or id) and its chunks.")
@root_option
@json_option
def docs(name: str, remove: tuple[str, ...], root: Path | None, json: bool) -> None:
    """List the project's documents with their chunk counts, or remove some with --remove."""
    from ftstudio.knowledge.store import KnowledgeStore

    project = Project.open(name, root)
    with KnowledgeStore.open(project.knowledge_db) as store:
        with store.batch():  # all or nothing: one name that is not there removes none
            removed = [store.remove_document(p).to_dict() for p in remove]
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


@click.command("search")
@click.argument("name", help="Project name.")
@click.argument("query", help="Any text; words are matched (English word forms too), ranked by BM25.")
@click.option("-k", default="5", help=f"How many results (1 to {MAX_K}).")
@root_option
@json_option
def search(name: str, query: str, k: str, root: Path | None, json: bool) -> None:
    """Full-text search of the project's chunks: the best matches with their snippet and where they come from."""
    from ftstudio.errors import BadInput
    from ftstudio.knowledge.store import search_store

    # Read as text and checked here: any bad value, a huge number included, gets this one message (exit 2).
    if not (k.isascii() and k.isdigit() and 1 <= int(k) <= MAX_K):
        raise BadInput(f"-k {k!r}: must be a whole number from 1 to {MAX_K}", hint="for example -k 10")
    project = Project.open(name, root)
    # The search ftstudio.search runs, without its request model: importing pydantic to check a query and a number
    # would double this command's start-up.
    if not query:
        raise BadInput("search: the query is empty", hint="nothing was started; give a few words to search for")
    hits = search_store(project.knowledge_db, query, int(k))
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
