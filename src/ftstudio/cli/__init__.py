"""The `ftstudio` command: one thin command per pipeline step over the core library.

The parser is click. A run imports only its command's module (click's lazy-loading group pattern), and `--help`
lists the commands from the table below without importing any: a command module may import its stage's pydantic
settings for its options' help, and pydantic alone costs more start-up than the rest of a listing. Heavy libraries
(torch, transformers, gradio) are imported inside the commands that need them.
"""

from __future__ import annotations

import importlib
import json
import signal
import sys

import click
from rich.text import Text

from ftstudio.cli.common import Group, err, visible
from ftstudio.errors import FtError, error_document

# Each command, in the order --help lists them: where it is defined (module in ftstudio.cli, attribute) and its
# summary for the listing, the first paragraph of its own help (a test holds the two equal).
COMMANDS = {
    "init": ("project", "init", "Create a project: projects/NAME/ with default settings in project.toml."),
    "projects": ("project", "projects", "List the projects in the workspace."),
    "ingest": ("ingest", "ingest", "Load PDF, DOCX, EPUB, HTML, Markdown and text files, cut them into chunks, and "
               "index them for search."),
    "docs": ("knowledge", "docs", "List the project's documents with their chunk counts, or remove some with "
             "--remove."),
    "search": ("knowledge", "search", "Full-text search of the project's chunks: the best matches with their snippet "
               "and where they come from."),
    "helpers": ("synth", "helpers", "List the helper models a provider offers (like `ollama list`), with context "
                "length and prices."),
    "generate": ("synth", "generate", "Have the helper model write question-answer pairs into data/sft_data.jsonl "
                 "(resumes an unfinished run)."),
    "data": ("data", "data", "Validate data/sft_data.jsonl (bad lines by number, exit 1 if any) and show statistics "
             "and review counts."),
    "train": ("train", "train", "Train a LoRA/QLoRA adapter on data/sft_data.jsonl into runs/<run-id>/ (Ctrl-C saves "
              "and stops)."),
    "chat": ("train", "chat", "Ask the base model with a run's adapter, using its chat template; the answer streams "
             "as it is written."),
    "eval": ("evaluate", "eval_run", "Answer the frozen eval set with the base and the tuned model, without and with "
             "the top passages, have the judge grade every answer, and save the card in the run's eval.json. An "
             "unreachable judge leaves the answers ungraded with a warning (exit 0); accuracies are then empty, not "
             "zero."),
    "export": ("export", "export", "Export a training run into the project's exports/ folder."),
    "ui": ("ui", "ui", "Open the studio: a web page with one tab per step, on http://HOST:PORT (see docs/security.md "
           "to share it)."),
    "models": ("models", "models", "Base models: which can be trained here, and the project's choice."),
}  # fmt: skip


class Commands(Group):
    """The top level: a command's module is imported when that command is asked for, the listing is the table's."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attribute, _ = COMMANDS[name]
        return getattr(importlib.import_module(f"ftstudio.cli.{module}"), attribute)

    def summary(self, ctx: click.Context, name: str) -> str:
        return COMMANDS[name][2]

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            # A stop, not a failure: exit 130 (click would print "Aborted!" and exit 1).
            raise click.exceptions.Exit(130) from None


app = Commands(
    name="ftstudio",
    help="Turn your documents into a fine-tuned language model: ingest → choose a base model → generate data → "
    "train → export.",
    no_args_is_help=True,
    context_settings={"show_default": True},  # options with a default say it, the commands below included
)


def main() -> None:
    """Entry point: run the app and turn library errors into a message and an exit code."""
    # Ctrl-C and the studio's Stop both arrive as SIGINT. A shell's background start (`cmd &` without job control)
    # hands its children SIGINT ignored, Python then never installs its handler, and a stop would be lost.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        app.main()
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
