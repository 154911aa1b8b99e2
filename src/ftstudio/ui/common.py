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

from ftstudio.errors import FtError
from ftstudio.jobs import JobRegistry, JobState
from ftstudio.project import Project

SECTIONS = ("knowledge", "base_model", "synth", "train", "export", "eval")


def describe(exc: BaseException) -> str:
    """A library error as the user should read it: the message, then what to do."""
    if isinstance(exc, FtError):
        return exc.message + (f"\n\n→ {exc.hint}" if exc.hint else "")
    return f"{type(exc).__name__}: {exc}"


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
    if annotation in (int, float):
        step = 1 if annotation is int else None
        numeric = {"precision": 0} if annotation is int else {}
        if step:
            numeric["step"] = step
        return gr.Number(value=value, **numeric, **_bounds(field), **common)
    return gr.Textbox(value="" if value is None else str(value), **common)


def widgets(model: type[BaseModel], values: BaseModel, names: Iterable[str] | None = None) -> dict[str, Any]:
    """Widgets for the named fields (all when None), in the model's order, showing `values`."""
    chosen = list(names) if names is not None else list(model.model_fields)
    return {n: widget(model, n, getattr(values, n)) for n in chosen if n in model.model_fields}


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


def cli_options(command: str) -> dict[str, Any]:
    """The options our own CLI command takes, by parameter name."""
    from ftstudio.cli.common import command_options

    return command_options(command)


def settings_args(command: str, values: dict[str, Any], model: type[BaseModel] | None = None) -> list[str]:
    """`--option value` for each value the CLI command has an option for (the rest live in project.toml).

    With `model`, values equal to the model's defaults are left out: the command shows what is special, and the
    project.toml the UI saved holds the rest.
    """
    options = cli_options(command)
    defaults = model() if model is not None else None
    if model is not None:  # widget values (an empty box, "auto") as the settings mean them
        known = {k: v for k, v in values.items() if k in model.model_fields}
        values = {**values, **clean_values(model, known)}
    args: list[str] = []
    for name, value in values.items():
        opt = options.get(name)
        if opt is None or value is None or value == "":
            continue
        if defaults is not None and name in type(defaults).model_fields and getattr(defaults, name) == value:
            continue
        if getattr(opt, "is_flag", False):
            if value:
                args.append(opt.opts[0])
            elif opt.secondary_opts:
                args.append(opt.secondary_opts[0])
            continue
        args += [opt.opts[0], ",".join(map(str, value)) if isinstance(value, list) else str(value)]
    return args


def option_widget(command: str, name: str, **extra: Any) -> gr.components.Component:
    """A widget for one option of our CLI command itself (not a project setting), labelled, typed and defaulted
    from the command; hidden when the command has no such option."""
    option = cli_options(command).get(name)
    if option is None:
        return gr.Textbox(visible=False, value=None)
    descriptor = getattr(option, "type_descriptor", None)
    annotation, _ = unwrap(getattr(descriptor, "annotation", str))
    common = {"label": name.replace("_", " ").capitalize(), "info": option.help, **extra}
    if annotation in (int, float):
        return gr.Number(value=option.default, precision=0 if annotation is int else None, **common)
    if annotation is bool:
        return gr.Checkbox(value=bool(option.default), **common)
    return gr.Textbox(value=option.default or "", **common)


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


def job_summary(registry: JobRegistry, state: JobState | None) -> str:
    """A short Markdown account of a job: status, progress, and how it ended."""
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
    if state.error:
        lines.append(f"```\n{state.error.strip()}\n```")
    return "\n\n".join(lines)


class JobPanel:
    """Status, progress, the command line, the log and a Stop button for one kind of job in one tab.

    A timer calls `refresh`; when it sees a job that ended and that this page has not yet shown, it also calls the
    tab's `on_finish(project, job_id)` so the tab reloads what the job produced (a reload of the page does too).
    """

    def __init__(self, registry: JobRegistry, command: str):
        self.registry = registry
        self.command = command
        with gr.Group(elem_id=f"{command}-job"):
            self.status = gr.Markdown("No job yet.", elem_classes=["job-status"], elem_id=f"{command}-status")
            with gr.Row():
                self.cli = cli_box("Running command (CLI equivalent)", scale=4)
                self.stop = gr.Button("Stop", variant="stop", scale=0, min_width=120, interactive=False)
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
                return ["No job yet.", "", "", gr.update(interactive=False), None, *nothing]
            log = self.registry.job(project_name, state.id).log_text()
            panel = [job_summary(self.registry, state), state.cli, log, gr.update(interactive=state.running)]
            if state.running or state.id == seen or on_finish is None:
                return [*panel, seen if state.running else state.id, *nothing]
            return [*panel, state.id, *on_finish(project_name, state.id)]

        def do_stop(project_name):
            state = self.registry.active(project_name, self.command) if project_name else None
            if state is None:
                return "Nothing is running."
            self.registry.stop(project_name, state.id)
            return job_summary(self.registry, self.registry.get(project_name, state.id))

        outputs = [self.status, self.cli, self.log, self.stop, self.seen, *finish_outputs]
        timer.tick(refresh, [project, self.seen], outputs, show_progress="hidden")
        self.stop.click(do_stop, [project], [self.status], api_name=f"stop_{self.command}")


def start_job(
    registry: JobRegistry, project: str, command: str, args: list[str], env: dict[str, str] | None = None
) -> str:
    """Start a job and return a Markdown line saying so, or why it was refused."""
    try:
        state = registry.start(project, command, args, env=env)
    except FtError as exc:
        return f"⚠ Not started: {describe(exc)}"
    return f"Started {command} job `{state.id}`."
