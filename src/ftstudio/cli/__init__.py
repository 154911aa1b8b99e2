"""The `ftstudio` command: one thin command per pipeline step over the core library.

Each command module has `register(app)`; heavy libraries (torch, transformers, gradio) are imported inside the
commands that need them, so `ftstudio --help` starts fast.
"""

from __future__ import annotations

import json
import sys

import typer
from rich.text import Text

from ftstudio.cli import data, evaluate, export, knowledge, models, project, synth, train, ui
from ftstudio.cli.common import err, visible
from ftstudio.errors import FtError, error_document

app = typer.Typer(
    name="ftstudio",
    help="Turn your documents into a fine-tuned language model: ingest → choose a base model → generate data "
    "→ train → export.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for module in (project, knowledge, models, synth, data, train, evaluate, export, ui):
    module.register(app)


def main() -> None:
    """Entry point: run the app and turn library errors into a message and an exit code."""
    try:
        app()
    except FtError as exc:
        # --json promises one JSON document on stdout, failures included.
        if "--json" in sys.argv[1:]:
            sys.stdout.write(json.dumps(error_document(exc)) + "\n")
        err.print(Text.assemble(("error:", "bold red"), " ", visible(exc.message)), highlight=False)
        if exc.hint:
            err.print(f"  → {exc.hint}", markup=False, highlight=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("stopped")
        sys.exit(130)
