"""What every tab shares: widgets made from a stage's pydantic settings, CLI arguments from the same values,
safe upload names, and the panel that shows a background job.

Widgets are built from the settings model (label from the field name, help from its description, bounds from its
constraints, value from the project's settings, whose defaults are the model's): the UI never retypes a default.
"""

from __future__ import annotations

import html
import re
import shutil
import time
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import annotated_types
import gradio as gr
from pydantic import BaseModel

from ftstudio.errors import FtError, error_message
from ftstudio.jobs import JobRegistry, JobState, request_line
from ftstudio.project import Project
from ftstudio.requests import Request

SECTIONS = ("knowledge", "base_model", "synth", "train", "export", "eval")


def describe(exc: BaseException) -> str:
    """A library error as the user should read it: the message, then what to do, with the command line's options
    named as this page's fields (`--max-steps` → *Max steps*)."""
    if isinstance(exc, FtError):
        return as_fields(exc.message + (f"\n\n→ {exc.hint}" if exc.hint else ""))
    return f"{type(exc).__name__}: {exc}"


_FLAG = re.compile(r"`?--(?:no-)?([a-z][a-z0-9-]*)(?: [A-Z_:.]+)?`?")


def _field_labels() -> dict[str, str]:
    from ftstudio.requests import JOB_REQUESTS

    labels: dict[str, str] = {}
    for kind in JOB_REQUESTS.values():
        for name, field in {**(kind.settings_model.model_fields if kind.settings_model else {}),
                            **kind.model_fields}.items():  # fmt: skip
            labels[name] = label_of(name, field)
    # Then the flags, so a flag (generate's --per-chunk) names its own field, not a setting of that name elsewhere.
    for kind in JOB_REQUESTS.values():
        for name, flag in kind.flags.items():
            field = {**(kind.settings_model.model_fields if kind.settings_model else {})}[name]
            labels[flag[2:].replace("-", "_")] = label_of(name, field)
    return labels


def as_fields(text: str) -> str:
    """`text` with each `--option` of a step's command written as the field that sets it, in italics."""
    labels = _field_labels()

    def swap(match: re.Match) -> str:
        label = labels.get(match.group(1).replace("-", "_"))
        return f"*{label}*" if label else match.group(0)

    return _FLAG.sub(swap, text)


def open_project(root: Path, name: str | None) -> Project:
    if not name:
        raise gr.Error("Pick or create a project first (top of the page).")
    try:
        return Project.open(name, root)
    except FtError as exc:
        raise gr.Error(describe(exc)) from exc


# -- settings → widgets → settings and CLI arguments ---------------------------------------------------------------


def unwrap(annotation: Any) -> tuple[Any, bool]:
    """The annotation without `| None`, and whether None was allowed."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def _bounds(field) -> dict[str, float]:
    found: dict[str, float] = {}
    for item in field.metadata:
        if isinstance(item, annotated_types.Ge):
            found["minimum"] = item.ge
        elif isinstance(item, annotated_types.Gt):
            found["minimum"] = item.gt
        elif isinstance(item, annotated_types.Le):
            found["maximum"] = item.le
        elif isinstance(item, annotated_types.Lt):
            found["maximum"] = item.lt
    return found


def label_of(name: str, field) -> str:
    return field.title or name.replace("_", " ").capitalize()


TRISTATE = {"auto": None, "yes": True, "no": False}


def _tristate_label(value: bool | None) -> str:
    return next(label for label, v in TRISTATE.items() if v is value)


def widget(model: type[BaseModel], name: str, value: Any, **extra: Any) -> gr.components.Component:
    """One widget for one settings field: numbers in number boxes, choices in dropdowns, flags in checkboxes."""
    field = model.model_fields[name]
    annotation, optional = unwrap(field.annotation)
    common = {"label": label_of(name, field), "info": field.description, **extra}
    if typing.get_origin(annotation) is list and typing.get_origin(typing.get_args(annotation)[0]) is Literal:
        choices = list(typing.get_args(typing.get_args(annotation)[0]))
        return gr.CheckboxGroup(choices=choices, value=list(value or []), **common)
    if typing.get_origin(annotation) is Literal:
        choices = list(typing.get_args(annotation))
        return gr.Dropdown(choices=choices, value=value, **common)
    if "choices" in common:  # a free field the stage lists the usual values of
        return gr.Dropdown(value=value, allow_custom_value=True, **common)
    if annotation is bool and optional:
        # Unset is a real third answer ("decide for me"), which a checkbox cannot say.
        return gr.Dropdown(choices=list(TRISTATE), value=_tristate_label(value), **common)
    if annotation is bool:
        return gr.Checkbox(value=bool(value), **common)
    if annotation in (int, float) and optional:
        # A number box cannot be empty (Gradio shows None as 0), and empty is a real answer here: the default the
        # description names, which the box says.
        return gr.Textbox(value="" if value is None else str(value), placeholder=empty_text(field), **common)
    if annotation in (int, float):
        numeric: dict[str, Any] = {"precision": 0, "step": 1} if annotation is int else {}
        return gr.Number(value=value, **numeric, **_bounds(field), **common)
    return gr.Textbox(value="" if value is None else str(value), **common)


def number_text(text: str, kind: type = int) -> Any:
    """A number typed into a text box, or the text itself when it is not one (validation then names the field)."""
    try:
        return kind(text.strip())
    except ValueError:
        return text


def empty_text(field) -> str:
    """What an empty box means, from the field's description ("...; empty: 100" → "empty: 100")."""
    description = field.description or ""
    _, sep, meaning = description.partition("empty: ")
    return f"empty: {meaning.rstrip('.').split(';')[0].split(' (')[0].strip()}" if sep else "empty: default"


def widgets(model: type[BaseModel], values: BaseModel, names: Iterable[str] | None = None) -> dict[str, Any]:
    """Widgets for the named fields (all when None), in the model's order, showing `values`."""
    chosen = list(names) if names is not None else list(model.model_fields)
    return {n: widget(model, n, getattr(values, n)) for n in chosen if n in model.model_fields}


def widget_grid(model: type[BaseModel], values: BaseModel, names: Iterable[str], per_row: int = 4) -> dict[str, Any]:
    """As `widgets`, laid out `per_row` to a row, each at least 200 px wide: a long list in one row squeezes
    checkboxes into slivers with unreadable labels."""
    chosen = [n for n in names if n in model.model_fields]
    found: dict[str, Any] = {}
    for start in range(0, len(chosen), per_row):
        with gr.Row(equal_height=True):
            for n in chosen[start : start + per_row]:
                found[n] = widget(model, n, getattr(values, n), min_width=200)
    return found


def shown_values(model: type[BaseModel], values: BaseModel, names: Iterable[str]) -> list[Any]:
    """Settings values as the widgets made by `widget` show them."""
    shown = []
    for name in names:
        value = getattr(values, name)
        annotation, optional = unwrap(model.model_fields[name].annotation)
        shown.append(_tristate_label(value) if annotation is bool and optional else value)
    return shown


def clean_values(model: type[BaseModel], values: dict[str, Any]) -> dict[str, Any]:
    """Widget values as the model wants them: an empty box means unset (None) where the field allows it."""
    cleaned = {}
    for name, value in values.items():
        field = model.model_fields[name]
        annotation, optional = unwrap(field.annotation)
        if annotation is bool and optional and value in TRISTATE:
            value = TRISTATE[value]
        elif isinstance(value, str) and not value.strip() and optional:
            value = None
        elif isinstance(value, str) and annotation in (int, float):
            value = number_text(value, annotation)
        elif isinstance(value, float) and annotation is int and value.is_integer():
            value = int(value)
        cleaned[name] = value
    return cleaned


def save_section(project: Project, section: str, model: type[BaseModel], values: dict[str, Any]) -> BaseModel:
    """Validate and save one table of project.toml from widget values; gr.Error lists every problem."""
    try:
        updated = project.update_settings(section, **clean_values(model, values))
    except FtError as exc:
        raise gr.Error(describe(exc)) from exc
    return getattr(updated, section)


def form_request(kind: type[Request], project: Project, values: dict[str, Any], **own: Any) -> Request:
    """The request a tab's form asks for: `own` options of the run, and as overrides the settings fields whose
    value differs from project.toml, with `save` (the form shows the project's settings, so what it changes is
    stored, by the job itself and only after its checks: the CLI's `--save`). BadInput names a wrong field."""
    model = kind.settings_model
    changed: dict[str, Any] = {}
    if model is not None:
        cleaned = clean_values(model, {k: v for k, v in values.items() if k in model.model_fields})
        current = getattr(project.settings(), kind.section)
        changed = {k: v for k, v in cleaned.items() if getattr(current, k) != v}
    own = clean_values(kind, {k: v for k, v in own.items() if k in kind.model_fields})
    return kind.build(**own, overrides=changed, save=bool(changed))


def request_widget(kind: type[Request], name: str, **extra: Any) -> gr.components.Component:
    """A widget for one of a request's own options (pairs, topic, ...), labelled and explained by the request."""
    field = kind.model_fields[name]
    return widget(kind, name, field.default, **extra)


# -- uploads ---------------------------------------------------------------------------------------------------------

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str) -> str:
    """A file name safe inside the project: no folders, no leading dot, only plain characters."""
    base = Path(name.replace("\\", "/")).name
    stem = _UNSAFE.sub("_", base).strip("._") or "upload"
    return stem[:120]


def store_uploads(project: Project, files: Iterable[str], folder: str = "uploads") -> list[Path]:
    """Copy uploaded temp files into `projects/<name>/<folder>/` under safe names; a re-upload replaces the file."""
    target = project.dir / folder
    target.mkdir(parents=True, exist_ok=True)
    stored = []
    for src in files:
        src_path = Path(src)
        dest = target / safe_name(src_path.name)
        if dest.resolve().parent != target.resolve():  # belt and braces: safe_name never leaves the folder
            raise gr.Error(f"refusing to store {src_path.name!r} outside {target}")
        shutil.copyfile(src_path, dest)
        stored.append(dest)
    return stored


def cli_box(label: str, **extra: Any) -> gr.Textbox:
    """A one-line, copyable command line."""
    return gr.Textbox(label=label, lines=1, max_lines=3, interactive=False, buttons=["copy"], **extra)


# -- the job panel ---------------------------------------------------------------------------------------------------


def _when(ts: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts)) if ts else ""


def job_summary(registry: JobRegistry, state: JobState | None, result_summary=None) -> str:
    """A short Markdown account of a job: status, progress, and how it ended (with `result_summary(result)`, what
    a finished job produced: it stays until the next job)."""
    if state is None:
        return "No job yet."
    job = registry.job(state.project, state.id)
    lines = [f"**{state.command}** job `{state.id}`: **{state.status}** (started {_when(state.started)})"]
    event = job.last_event()
    if state.running and event is not None:
        total = f" / {event.total:g}" if event.total else ""
        lines.append(f"{event.stage}: {event.done:g}{total} {html.escape(event.message)}")
        counts = {k: v for k, v in event.data.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if counts:
            lines.append(" · ".join(f"{k.replace('_', ' ')}: **{v:g}**" for k, v in counts.items()))
        if event.total:
            lines.append(f"<progress max='{event.total}' value='{event.done}' style='width:100%'></progress>")
    if state.stop_requested and state.running:
        lines.append("Stopping: the job is saving what it finished…")
    if not state.running and result_summary is not None and (shown := result_summary(state.result)):
        lines.append(shown)
    if state.error and error_message(state.result) is not None:  # the command's own message: fields, not flags
        lines.append("⚠ " + as_fields(html.escape(state.error.strip())).replace("\n", "<br>"))
    elif state.error:  # a log tail (a crash): as it was written
        lines.append(f"```\n{state.error.strip()}\n```")
    return "\n\n".join(lines)


class JobPanel:
    """Status, progress, the command line, the log and a Stop button for one kind of job in one tab.

    A timer calls `refresh`; when it sees a job that ended and that this page has not yet shown, it also calls the
    tab's `on_finish(project, job_id)` so the tab reloads what the job produced (a reload of the page does too).
    """

    def __init__(self, registry: JobRegistry, command: str, result_summary=None):
        self.registry = registry
        self.command = command
        self.result_summary = result_summary
        slug = command.replace(" ", "-")  # `models use` -> models-use
        self.slug = slug
        with gr.Group(elem_id=f"{slug}-job"):
            self.status = gr.Markdown("No job yet.", elem_classes=["job-status"], elem_id=f"{slug}-status")
            with gr.Row():
                self.cli = cli_box("Running command (CLI equivalent)", scale=4)
                self.stop = gr.Button("Stop", variant="stop", scale=0, min_width=120, interactive=False, visible=False)
            with gr.Accordion("Log", open=False):
                self.log = gr.Textbox(show_label=False, lines=8, max_lines=16, autoscroll=True, interactive=False)
        self.seen = gr.State(None)

    def state(self, project: str | None) -> JobState | None:
        if not project:
            return None
        try:
            return self.registry.latest(project, self.command)
        except FtError:
            return None

    def wire(self, timer: gr.Timer, project: gr.Dropdown, on_finish=None, finish_outputs: list | None = None) -> None:
        finish_outputs = finish_outputs or []

        def refresh(project_name, seen):
            state = self.state(project_name)
            nothing = [gr.update()] * len(finish_outputs)
            if state is None:
                return ["No job yet.", "", "", gr.update(interactive=False, visible=False), None, *nothing]
            log = self.registry.job(project_name, state.id).log_text()
            summary = job_summary(self.registry, state, self.result_summary)
            panel = [summary, state.cli, log, gr.update(interactive=state.running, visible=state.running)]
            if state.running or state.id == seen or on_finish is None:
                return [*panel, seen if state.running else state.id, *nothing]
            return [*panel, state.id, *on_finish(project_name, state.id)]

        def do_stop(project_name):
            state = self.registry.active(project_name, self.command) if project_name else None
            if state is None:
                return "Nothing is running."
            self.registry.stop(project_name, state.id)
            return job_summary(self.registry, self.registry.get(project_name, state.id), self.result_summary)

        outputs = [self.status, self.cli, self.log, self.stop, self.seen, *finish_outputs]
        timer.tick(refresh, [project, self.seen], outputs, show_progress="hidden")
        self.stop.click(do_stop, [project], [self.status], api_name=f"stop_{self.slug.replace('-', '_')}")


def start_request(registry: JobRegistry, project: str, request: Request, env: dict[str, str] | None = None) -> str:
    """Start a job for `request` and return a Markdown line saying so, or why it was refused (naming the field)."""
    try:
        state = registry.start(project, request, env=env)
    except FtError as exc:
        return f"⚠ Not started: {describe(exc)}"
    return f"Started {request.command} job `{state.id}`."


def command_preview(registry: JobRegistry, project: str, request: Request) -> str:
    """The command line a job for `request` would run (what the tab shows before it starts)."""
    return request_line(project, request, registry.root)
