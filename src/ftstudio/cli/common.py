"""What every command shares: the --root, --json, --set and --save options, the listing group, output, progress bars,
error rendering."""

import inspect
import json
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console

from ftstudio.progress import Event, ProgressFn, event_line

if TYPE_CHECKING:  # only a type here: importing pydantic would cost every command's start-up
    from pydantic import BaseModel

# A path argument is only converted: each command checks its paths itself (an unreadable file is the stage's
# report, not a usage error).
PATH = click.Path(path_type=Path, readable=False)

root_option = click.option(
    "--root", type=PATH, help="Workspace root (holds projects/). Default: $FTSTUDIO_ROOT, else the current folder."
)
json_option = click.option("--json", is_flag=True, help="Print one JSON document on stdout; progress goes to stderr.")
set_option = click.option(
    "--set",
    "set_",
    multiple=True,
    metavar="KEY=VALUE",
    help="Any setting of this step, for this run (repeatable; lists as JSON), e.g. --set dropout=0.1.",
)
save_option = click.option(
    "--save", is_flag=True, help="Also store this run's settings in project.toml (else: this run only)."
)


def setting_help(model: "type[BaseModel]", field: str, more: str = "") -> str:
    """An option's help is its setting's own description (then `more`) and default (one source of truth: the
    stage's model), the default written last as click writes the other options' ones (their own default is None:
    unset = the project's); a list default shown comma-separated."""
    info = model.model_fields[field]
    value = info.default
    if isinstance(value, list | tuple):
        value = ", ".join(map(str, value))
    default = "" if value is None else f"  [default: {value}]"
    return " ".join(filter(None, (info.description, more))) + default


def first_paragraph(help: str | None) -> str:
    """A command's summary in a listing: the first paragraph of its help, as one line."""
    return " ".join(inspect.cleandoc(help or "").partition("\n\n")[0].split())


class Group(click.Group):
    """A group that lists its commands in the order they were added, each with its whole summary (click would cut
    it to the terminal's width, and most end in "...")."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)

    def summary(self, ctx: click.Context, name: str) -> str:
        return first_paragraph(self.get_command(ctx, name).help)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, self.summary(ctx, name)) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def overrides(flags: dict[str, Any], sets: Sequence[str] | None) -> dict[str, Any]:
    """The settings overrides of one command: its setting flags that were given, then each --set KEY=VALUE."""
    from ftstudio.requests import parse_set

    found = {k: v for k, v in flags.items() if v is not None}
    found.update(parse_set(item) for item in sets or [])
    return found


# C0/C1 control characters (tab and newline aside) and the bidirectional overrides that reorder what a terminal shows.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def visible(text: str) -> str:
    """`text` with its control characters written as escapes (`\\x1b`), so a file name cannot drive the terminal."""
    return _CONTROL.sub(lambda m: ascii(m.group())[1:-1], text)


class TextConsole(Console):
    """A console that prints text as text: markup only where a call asks for it (with `markup=True`, user strings
    inside go through `rich.markup.escape`), no emoji codes, and control characters made visible."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
        kwargs.setdefault("markup", False)
        super().print(*(visible(o) if isinstance(o, str) else o for o in objects), **kwargs)


out = TextConsole(highlight=False, soft_wrap=True, emoji=False)
err = TextConsole(stderr=True, highlight=False, emoji=False, soft_wrap=True)  # a long path stays one line


def emit(data: Any, json_mode: bool, human: Callable[[], None] | None = None) -> None:
    """Print the command's result: `data` as JSON, or the human rendering (`human`, else the JSON pretty)."""
    if json_mode:
        sys.stdout.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")
    elif human is not None:
        human()
    else:
        out.print_json(data=data)


@contextmanager
def progress_bar(description: str) -> Iterator[ProgressFn]:
    """A progress callback for long work: a bar on a terminal, else one JSON event per line on stderr.

    The JSON lines are what a background job (ftstudio.jobs) reads to show live progress in the UI.
    """
    if not err.is_terminal:
        yield _json_events()
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[detail]}", markup=False),  # a file name, shown as text
    ]
    with Progress(*columns, console=err, transient=False) as bar:
        task = bar.add_task(description, total=None, detail="")

        def update(event: Event) -> None:
            bar.update(task, completed=event.done, total=event.total, detail=visible(event.message))

        yield update


def _json_events(min_interval: float = 0.1) -> ProgressFn:
    last = 0.0

    def write(event: Event) -> None:
        nonlocal last
        now = time.monotonic()
        # Throttled, but the last event of a stage (done == total) always goes out.
        if now - last >= min_interval or (event.total is not None and event.done >= event.total):
            last = now
            sys.stderr.write(event_line(event) + "\n")
            sys.stderr.flush()

    return write
