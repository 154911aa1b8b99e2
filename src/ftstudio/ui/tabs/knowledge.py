"""Tab 1, Knowledge: upload documents, ingest them in the background, see the documents, search the chunks."""

from __future__ import annotations

import html
from pathlib import Path

import gradio as gr

from ftstudio.errors import FtError
from ftstudio.knowledge.settings import KnowledgeSettings
from ftstudio.knowledge.store import KnowledgeStore
from ftstudio.requests import IngestRequest
from ftstudio.ui.common import (
    JobPanel,
    cli_box,
    command_preview,
    describe,
    form_request,
    open_project,
    safe_name,
    shown_values,
    start_request,
    store_uploads,
    widgets,
)

DOC_COLUMNS = ["path", "title", "type", "chunks", "tokens", "ingested_at"]


def shown_path(project, path: str) -> str:
    """A stored document path as the user reads it: relative to the project when it lies inside."""
    try:
        return str(Path(path).relative_to(project.dir))
    except ValueError:
        return path


def documents_table(project) -> list[list]:
    if not project.knowledge_db.exists():
        return []
    with KnowledgeStore.open(project.knowledge_db) as store:
        return [[shown_path(project, d.path), *(getattr(d, c) for c in DOC_COLUMNS[1:])] for d in store.documents()]


def document_choices(project) -> list[tuple[str, str]]:
    """(shown, stored) path pairs for the remove dropdown."""
    if not project.knowledge_db.exists():
        return []
    with KnowledgeStore.open(project.knowledge_db) as store:
        return [(shown_path(project, d.path), d.path) for d in store.documents()]


def render_hits(project, hits) -> str:
    if not hits:
        return "No chunk matches."
    parts = []
    for rank, hit in enumerate(hits, 1):
        where = f" · {html.escape(hit.chunk.location)}" if hit.chunk.location else ""
        parts.append(
            f"**{rank}. {html.escape(shown_path(project, hit.chunk.document))}**{where} · score {hit.score:.2f}\n\n"
            f"> {html.escape(hit.snippet).replace(chr(10), ' ')}"
        )
    return "\n\n---\n\n".join(parts)


def render_result(project, result) -> list[list]:
    """Per-file rows from the ingest command's JSON document: file, outcome, chunks, error."""
    if not isinstance(result, dict):
        return []
    rows = []
    for item in result.get("documents", []):
        if isinstance(item, dict):
            error = " → ".join(x for x in (item.get("error"), item.get("hint")) if x)
            rows.append([shown_path(project, item.get("path") or ""), item.get("status"), item.get("chunks"), error])
    for path in result.get("skipped", []):
        rows.append([shown_path(project, str(path)), "skipped", 0, "not a supported document type"])
    return rows


def build(ctx) -> None:
    root, registry = ctx.root, ctx.registry
    gr.Markdown(
        "Upload the documents the model should learn from (PDF, DOCX, EPUB, HTML, Markdown, text). They are cut "
        "into chunks that follow their headings and paragraphs, and indexed for search."
    )
    with gr.Row():
        files = gr.File(label="Documents", file_count="multiple", scale=2, elem_id="knowledge-files")
        folder = gr.File(label="…or a whole folder", file_count="directory", scale=1)
    with gr.Row():
        fields = widgets(KnowledgeSettings, KnowledgeSettings())
    preview = cli_box("Will run (CLI equivalent)", elem_id="ingest-preview")
    ingest = gr.Button("Ingest", variant="primary")
    started = gr.Markdown()
    panel = JobPanel(registry, "ingest")
    per_file = gr.Dataframe(
        headers=["file", "outcome", "chunks", "error"], label="Last ingest, per file", interactive=False
    )

    with gr.Row():
        gr.Markdown("### Documents")
        reload_docs = gr.Button("Refresh", size="sm", scale=0)
    docs = gr.Dataframe(
        headers=DOC_COLUMNS, label="In the knowledge store", interactive=False, elem_id="knowledge-docs"
    )
    with gr.Row():
        to_remove = gr.Dropdown(label="Document", choices=[], scale=3)
        remove = gr.Button("Remove document", variant="stop", scale=1, interactive=False)
    removed = gr.Markdown()

    gr.Markdown("### Search")
    with gr.Row():
        query = gr.Textbox(label="Search the chunks", placeholder="a few words", scale=4)
        k = gr.Number(label="Results", value=5, precision=0, minimum=1, maximum=50, scale=1)
    hits = gr.Markdown(elem_id="knowledge-hits")

    names = list(fields)
    inputs = [fields[n] for n in names]

    def _paths(uploaded, directory) -> list[str]:
        return [*(uploaded or []), *(directory or [])]

    def _request(project, stored: list[str], values) -> IngestRequest:
        return form_request(IngestRequest, project, dict(zip(names, values, strict=True)), paths=stored)

    def show_preview(project_name, uploaded, directory, *values):
        if not project_name:
            return ""
        project = open_project(root, project_name)
        stored = [str(project.dir / "uploads" / safe_name(p)) for p in _paths(uploaded, directory)] or ["PATH…"]
        try:
            return command_preview(registry, project_name, _request(project, stored, values))
        except FtError as exc:
            return f"(not valid yet) {exc.message}"

    def load(project_name):
        if not project_name:
            return [gr.update()] * len(inputs) + [[], gr.update(choices=[], value=None)]
        project = open_project(root, project_name)
        current = project.settings().knowledge
        table = documents_table(project)
        return shown_values(KnowledgeSettings, current, names) + [
            table,
            gr.update(choices=document_choices(project), value=None),
        ]

    def run_ingest(project_name, uploaded, directory, *values):
        project = open_project(root, project_name)
        paths = _paths(uploaded, directory)
        if not paths:
            return "Add a document or a folder first."
        try:
            _request(project, ["PATH"], values).resolve(project)  # the settings are checked before files are copied
        except FtError as exc:
            return f"⚠ Not started: {describe(exc)}"
        stored = [str(p) for p in store_uploads(project, paths)]
        return start_request(registry, project_name, _request(project, stored, values))

    def after_job(project_name, job_id):
        project = open_project(root, project_name)
        state = registry.get(project_name, job_id)
        table = documents_table(project)
        return render_result(project, state.result), table, gr.update(choices=document_choices(project))

    def do_remove(project_name, path):
        project = open_project(root, project_name)
        if not path:
            return "Pick a document to remove.", gr.update(), gr.update()
        try:
            with KnowledgeStore.open(project.knowledge_db) as store:
                gone = store.remove_document(path)
        except FtError as exc:
            return describe(exc), gr.update(), gr.update()
        table = documents_table(project)
        return (
            f"Removed {gone.path} ({gone.chunks} chunks).",
            table,
            gr.update(choices=document_choices(project), value=None),
        )

    def do_search(project_name, text, count):
        project = open_project(root, project_name)
        if not text.strip():
            return "Type a few words to search."
        if not project.knowledge_db.exists():
            return "The knowledge store is empty: ingest a document first."
        with KnowledgeStore.open(project.knowledge_db) as store:
            return render_hits(project, store.search(text, k=int(count or 5)))

    preview_inputs = [ctx.project, files, folder, *inputs]
    for comp in (ctx.project, files, folder, *inputs):
        comp.change(show_preview, preview_inputs, [preview], show_progress="hidden", queue=False)

    def switch(project_name):
        """Another project: its own documents, and nothing (results, hits, messages) of the one before."""
        return [*load(project_name), [], "", "", ""]

    ctx.project.change(switch, [ctx.project], [*inputs, docs, to_remove, per_file, hits, removed, started])
    ctx.demo.load(load, [ctx.project], [*inputs, docs, to_remove])
    ctx.tab.select(lambda name: load(name)[len(inputs) :], [ctx.project], [docs, to_remove])
    ingest.click(run_ingest, preview_inputs, [started], api_name="ingest")
    panel.wire(ctx.timer, ctx.project, after_job, [per_file, docs, to_remove])
    reload_docs.click(load, [ctx.project], [*inputs, docs, to_remove], api_name="documents")
    to_remove.change(lambda p: gr.update(interactive=bool(p)), [to_remove], [remove], queue=False)
    remove.click(do_remove, [ctx.project, to_remove], [removed, docs, to_remove], api_name="remove_document")
    query.submit(do_search, [ctx.project, query, k], [hits], api_name="search")
