"""Tab 5, Export: a LoRA adapter, merged safetensors or GGUF from a run, checked after writing; the files with
sizes and download links, the Ollama Modelfile and the `ollama create` command. Export runs as a job of
`ftstudio export`."""

from __future__ import annotations

import shlex

import gradio as gr

from ftstudio.export.settings import ExportSettings
from ftstudio.jobs import cli_line
from ftstudio.ui.common import (
    JobPanel,
    cli_box,
    cli_options,
    open_project,
    save_section,
    settings_args,
    start_job,
    widgets,
)
from ftstudio.ui.tabs.train import _runs

FILE_COLUMNS = ["file", "size"]


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def export_files(project) -> list:
    folder = project.exports_dir
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")), key=lambda p: str(p))


def format_choices() -> list[str]:
    """The formats `ftstudio export --format` accepts (read from the CLI, never retyped)."""
    option = cli_options("export").get("format")
    choices = getattr(getattr(option, "type", None), "choices", None)
    return list(choices) if choices else []


def build(ctx) -> None:
    root, registry = ctx.root, ctx.registry
    with gr.Row():
        run = gr.Dropdown(label="Run", info="A completed training run (the newest when empty)", choices=[])
        fmt = gr.Dropdown(label="Format", choices=format_choices(), value=(format_choices() or [None])[-1])
        fields = widgets(ExportSettings, ExportSettings())
    names = list(fields)
    inputs = [fields[n] for n in names]
    preview = cli_box("Will run (CLI equivalent)")
    start = gr.Button("Export", variant="primary")
    started = gr.Markdown()
    panel = JobPanel(registry, "export")
    verification = gr.JSON(label="Result and verification", open=True)

    with gr.Row():
        gr.Markdown("### Files")
        reload_files = gr.Button("Refresh", size="sm", scale=0)
    table = gr.Dataframe(headers=FILE_COLUMNS, label="In exports/", interactive=False)
    downloads = gr.File(label="Download", file_count="multiple", interactive=False)
    modelfile = gr.Code(label="Ollama Modelfile", lines=8)
    ollama_cmd = cli_box("Install into Ollama yourself")

    def _args(project_name, run_id, format_name, values):
        args = [project_name]
        if run_id:
            args += ["--run", run_id]
        if format_name:
            args += ["--format", format_name]
        return args + settings_args("export", values, ExportSettings)

    def show_preview(project_name, run_id, format_name, *values):
        if not project_name:
            return ""
        return cli_line("export", _args(project_name, run_id, format_name, dict(zip(names, values, strict=True))), root)

    def load(project_name):
        if not project_name:
            return [gr.update()] * (len(inputs) + 5)
        project = open_project(root, project_name)
        current = project.settings().export
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
            command = shlex.join(["ollama", "create", project.name, "-f", str(newest)])
        return [getattr(current, n) for n in names] + [
            gr.update(choices=completed, value=None),
            table_rows,
            [str(p) for p in files] or None,
            text,
            command,
        ]

    def run_export(project_name, run_id, format_name, *values):
        project = open_project(root, project_name)
        settings = save_section(project, "export", ExportSettings, dict(zip(names, values, strict=True)))
        chosen = {n: getattr(settings, n) for n in names}
        return start_job(registry, project_name, "export", _args(project_name, run_id, format_name, chosen))

    def after_job(project_name, job_id):
        state = registry.get(project_name, job_id)
        kept = [gr.update()] * len(inputs)  # the settings the user may be editing stay as they are
        return [state.result, *kept, *load(project_name)[len(inputs) :]]

    preview_inputs = [ctx.project, run, fmt, *inputs]
    for comp in (ctx.project, run, fmt, *inputs):
        comp.change(show_preview, preview_inputs, [preview], show_progress="hidden", queue=False)
    outputs = [*inputs, run, table, downloads, modelfile, ollama_cmd]
    ctx.project.change(load, [ctx.project], outputs)
    ctx.demo.load(load, [ctx.project], outputs)
    reload_files.click(load, [ctx.project], outputs, api_name="export_files")
    start.click(run_export, preview_inputs, [started], api_name="export")
    panel.wire(ctx.timer, ctx.project, after_job, [verification, *outputs])
