"""`ftstudio ingest`: documents into the project's knowledge store.

Its own module, apart from `docs` and `search`: its options' help comes from the pydantic knowledge settings, which
those two listings need not import. Loaders and tokenizers load only when it runs. Setting flags apply to this run;
`--save` also stores them (the one rule of every command, see README).
"""

import sys
from pathlib import Path

import click

from ftstudio.cli.common import (
    PATH,
    emit,
    err,
    json_option,
    out,
    overrides,
    progress_bar,
    root_option,
    save_option,
    set_option,
    setting_help,
)
from ftstudio.knowledge.settings import KnowledgeSettings
from ftstudio.project import Project


def _setting_help(name: str) -> str:
    return setting_help(KnowledgeSettings, name)


@click.command("ingest")
@click.argument("name", help="Project name.")
@click.argument("paths", nargs=-1, required=True, type=PATH, help="Files or folders (recursive) to ingest.")
@click.option("--chunk-tokens", type=int, help=_setting_help("chunk_tokens"))
@click.option("--overlap", type=int, help=_setting_help("overlap"))
@set_option
@save_option
@root_option
@json_option
def ingest(
    name: str,
    paths: tuple[Path, ...],
    chunk_tokens: int | None,
    overlap: int | None,
    set_: tuple[str, ...],
    save: bool,
    root: Path | None,
    json: bool,
) -> None:
    """Load PDF, DOCX, EPUB, HTML, Markdown and text files, cut them into chunks, and index them for search."""
    import ftstudio
    from ftstudio.requests import IngestRequest

    project = Project.open(name, root)
    changes = overrides({"chunk_tokens": chunk_tokens, "overlap": overlap}, set_)
    request = IngestRequest.build(paths=list(paths), overrides=changes, save=save)
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
        sys.exit(1)
