"""Tab 5, Export: a LoRA adapter, merged safetensors or GGUF from a run, checked after writing; the files with
sizes and download links, the Ollama Modelfile, "Install into Ollama", and the `ollama create` command to copy.
Export runs as a background job of `ftstudio export`."""

from __future__ import annotations

import gradio as gr

from ftstudio.errors import FtError
from ftstudio.export.settings import ExportSettings
from ftstudio.requests import ExportRequest
from ftstudio.ui.common import (
    JobPanel,
    cli_box,
    command_preview,
    describe,
    form_request,
    open_project,
    request_widget,
    shown_values,
    start_request,
    widget,
)
from ftstudio.ui.tabs.train import _runs

FILE_COLUMNS = ["file", "size"]
CHECK_COLUMNS = ["prompt", "tokens", "same tokens", "agreed", "worst gap", "stops at end of turn", "llama.cpp wrote"]
GGUF_ONLY = ("quant", "verify", "verify_prompts", "verify_tokens")
MAIN_FIELDS = ("format", "quant", "verify")


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def export_files(project) -> list:
    folder = project.exports_dir
    if not folder.is_dir():
        return []
    # Hidden entries (the download archives, a GGUF export's work folder) are not exports: judged inside exports/
    # only, so a workspace under a dotted folder (~/.ftstudio) still lists its files.
    return sorted(p for p in folder.rglob("*")
                  if p.is_file() and not any(x.startswith(".") for x in p.relative_to(folder).parts))  # fmt: skip


def field_names() -> list[str]:
    """The settings fields the tab shows, in the order of its inputs: the main ones, then the rest."""
    main = [n for n in MAIN_FIELDS if n in ExportSettings.model_fields]
    return main + [n for n in ExportSettings.model_fields if n not in MAIN_FIELDS]


def _quant_widget(value):
    """The quant field as a dropdown of the types the export stage writes, when it lists them."""
    from ftstudio.export import settings as export_settings

    quants = getattr(export_settings, "QUANTS", None)
    return widget(ExportSettings, "quant", value, **({"choices": list(quants)} if quants else {}))


def verdict_line(result) -> str:
    """One line on the export's check: did llama.cpp behave like the merged model?"""
    if not isinstance(result, dict) or "format" not in result:
        return ""
    check = result.get("verification")
    if not check:
        return f"Exported **{result['format']}**; no verification ran for this format or setting."
    agreed = "**passed**" if check.get("passed") else "**failed**"
    return f"Verification {agreed}: the GGUF in llama.cpp against the merged model in transformers."


def check_rows(result) -> list[list]:
    """The verification as a table: one row per held-out prompt."""
    check = result.get("verification") if isinstance(result, dict) else None
    rows = []
    for p in (check or {}).get("prompts", []):
        rows.append([p.get("prompt"), p.get("tokens"), "yes" if p.get("same_tokenization") else "no",
                     f"{p.get('agreed')}/{p.get('tokens')}", round(p.get("worst_gap") or 0.0, 4),
                     "yes" if p.get("stopped_on_end_of_turn") else "no", p.get("text")])  # fmt: skip
    return rows


def download_paths(project) -> list[str]:
    """What to download: each file in exports/ itself, each export folder (merged model, adapter) as one .zip."""
    from ftstudio.export.files import downloads

    return [str(p) for p in downloads(project.exports_dir)]


def ollama_command(model_name: str, modelfile) -> str:
    try:
        from ftstudio.export.ollama import create_command
    except ImportError:
        return ""
    return create_command(model_name, modelfile)


def build(ctx) -> None:
    root, registry = ctx.root, ctx.registry
    defaults = ExportSettings()
    fields = {}
    with gr.Row():
        run = gr.Dropdown(label="Run", info="A completed training run (the newest when empty)", choices=[])
        for name in field_names():
            if name in MAIN_FIELDS:
                make = _quant_widget if name == "quant" else lambda v, n=name: widget(ExportSettings, n, v)
                fields[name] = make(getattr(defaults, name))
    with gr.Accordion("More settings", open=False), gr.Row():
        for name in field_names():
            if name not in MAIN_FIELDS:
                fields[name] = widget(ExportSettings, name, getattr(defaults, name))
    to_ollama = request_widget(ExportRequest, "to_ollama", placeholder="e.g. my-tutor (needs Ollama running)")
    names = list(fields)
    inputs = [fields[n] for n in names]
    preview = cli_box("Will run (CLI equivalent)", elem_id="export-preview")
    start = gr.Button("Export", variant="primary")
    started = gr.Markdown()
    panel = JobPanel(registry, "export")
    verdict = gr.Markdown(elem_id="export-verdict")
    verification = gr.Dataframe(headers=CHECK_COLUMNS, label="Verification: each held-out prompt in llama.cpp",
                                interactive=False, wrap=True, elem_id="export-checks")  # fmt: skip

    with gr.Row():
        gr.Markdown("### Files")
        reload_files = gr.Button("Refresh", size="sm", scale=0)
    table = gr.Dataframe(headers=FILE_COLUMNS, label="In exports/", interactive=False, elem_id="export-table")
    downloads = gr.File(label="Download", file_count="multiple", interactive=False, elem_id="export-downloads")
    gr.Markdown("An export folder (a merged model, an adapter) downloads as one zip, kept beside it in "
                "`exports/.archives/`: made again when the folder changes, deleted when the folder is.",
                elem_id="export-archive-note")  # fmt: skip
    modelfile = gr.Code(label="Ollama Modelfile (newest)", lines=8)
    ollama_cmd = cli_box("Install into Ollama yourself")

    def _request(project, run_id, ollama_name, values) -> ExportRequest:
        return form_request(ExportRequest, project, dict(zip(names, values, strict=True)), run=run_id or None,
                            to_ollama=ollama_name)  # fmt: skip

    def show_preview(project_name, run_id, ollama_name, *values):
        if not project_name:
            return ""
        try:
            request = _request(open_project(root, project_name), run_id, ollama_name, values)
        except FtError as exc:
            return f"(not valid yet) {exc.message}"
        return command_preview(registry, project_name, request)

    def results(project):
        completed = [r.id for r in reversed(_runs(project)) if r.status == "completed"]
        files = export_files(project)
        if files:
            gr.set_static_paths([project.exports_dir])  # served in place: a GGUF is never copied to a cache
        table_rows = [[str(p.relative_to(project.exports_dir)), _size(p.stat().st_size)] for p in files]
        modelfiles = [p for p in files if p.name == "Modelfile" or p.name.endswith(".Modelfile")]
        text, command = "", ""
        if modelfiles:
            newest = max(modelfiles, key=lambda p: p.stat().st_mtime)
            text = newest.read_text(encoding="utf-8", errors="replace")
            command = ollama_command(project.name, newest)
        return [
            gr.update(choices=completed, value=None),
            table_rows,
            download_paths(project) or None,
            text,
            command,
        ]

    def load(project_name):
        if not project_name:
            return [gr.update()] * (len(inputs) + 5)
        project = open_project(root, project_name)
        return shown_values(ExportSettings, project.settings().export, names) + results(project)

    def run_export(project_name, run_id, ollama_name, *values):
        project = open_project(root, project_name)
        try:
            request = _request(project, run_id, ollama_name, values)
        except FtError as exc:
            return f"⚠ Not started: {describe(exc)}"
        return start_request(registry, project_name, request)

    def after_job(project_name, job_id):
        project = open_project(root, project_name)
        result = registry.get(project_name, job_id).result
        return [verdict_line(result), check_rows(result), *results(project)]

    def for_format(fmt):
        """Quant and the verification act on a GGUF only: off for an adapter or a merged model."""
        return [gr.update(interactive=fmt == "gguf") for _ in GGUF_ONLY if _ in fields]

    fields["format"].change(for_format, [fields["format"]], [fields[n] for n in GGUF_ONLY if n in fields],
                            queue=False)  # fmt: skip
    preview_inputs = [ctx.project, run, to_ollama, *inputs]
    for comp in preview_inputs:
        comp.change(show_preview, preview_inputs, [preview], show_progress="hidden", queue=False)
    outputs = [*inputs, run, table, downloads, modelfile, ollama_cmd]
    ctx.project.change(load, [ctx.project], outputs)
    ctx.demo.load(load, [ctx.project], outputs)
    ctx.tab.select(lambda name: results(open_project(root, name)) if name else [gr.update()] * 5, [ctx.project],
                   outputs[len(inputs) :])  # the runs and files only: the form keeps what was typed  # fmt: skip
    reload_files.click(load, [ctx.project], outputs, api_name="export_files")
    start.click(run_export, preview_inputs, [started], api_name="export")
    panel.wire(ctx.timer, ctx.project, after_job, [verdict, verification, run, table, downloads, modelfile, ollama_cmd])
