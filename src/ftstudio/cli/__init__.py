"""The `ftstudio` command: one thin command per pipeline step over the core library.

Each command module has `register(app)`; heavy libraries (torch, transformers, gradio) are imported inside the
commands that need them, so `ftstudio --help` starts fast. A run of one command imports and builds only its module:
typer builds every option of every registered command before it runs one. The command modules do without
`from __future__ import annotations`: typer would compile and evaluate each option's annotation string every time
it builds a command (46 ms of the 16 commands' 56 ms here).
"""

from __future__ import annotations

import importlib
import json
import signal
import sys

import typer
from rich.text import Text

from ftstudio.cli.common import err, visible
from ftstudio.errors import FtError, error_document

# Each command and the module in ftstudio.cli that registers it, in the order --help lists them (a test holds this
# equal to what the modules register).
COMMANDS = {
    "init": "project", "projects": "project",
    "ingest": "knowledge", "docs": "knowledge", "search": "knowledge",
    "helpers": "synth", "generate": "synth",
    "data": "data",
    "train": "train", "chat": "train",
    "eval": "evaluate",
    "export": "export",
    "ui": "ui",
    "models": "models",
}  # fmt: skip


def build_app(command: str | None = None) -> typer.Typer:
    """The `ftstudio` app: with only `command`'s module registered when it names one, else every command."""
    app = typer.Typer(
        name="ftstudio",
        help="Turn your documents into a fine-tuned language model: ingest → choose a base model → generate data "
        "→ train → export.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    app.callback()(_group)  # a group even with one command registered: typer would run a lone command as the app
    modules = [COMMANDS[command]] if command in COMMANDS else dict.fromkeys(COMMANDS.values())
    for name in modules:
        importlib.import_module(f"ftstudio.cli.{name}").register(app)
    return app


def _group() -> None:
    pass


def main() -> None:
    """Entry point: run the app and turn library errors into a message and an exit code."""
    # Ctrl-C and the studio's Stop both arrive as SIGINT. A shell's background start (`cmd &` without job control)
    # hands its children SIGINT ignored, Python then never installs its handler, and a stop would be lost.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    # The top level has no options of its own, so the first argument is the command, if there is one.
    app = build_app(sys.argv[1] if len(sys.argv) > 1 else None)
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
