"""Start-up (issues 16 and 22): the listings import nothing heavy, and a command run imports only its own module.

What each command imports is read from the real entry point's own process (sys.modules once it has finished),
not timed: bench/startup.py measures the time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import click
import pytest

import ftstudio
from ftstudio.cli import COMMANDS, app
from ftstudio.cli.common import first_paragraph

# Machine learning, the studio, the hub client, the document loaders: each costs from a tenth of a second to seconds.
HEAVY = (
    "torch", "transformers", "peft", "trl", "accelerate", "safetensors", "tokenizers", "huggingface_hub", "gguf",
    "numpy", "gradio", "aiohttp", "lxml", "pypdfium2", "docx", "charset_normalizer", "pandas", "jinja2",
)  # fmt: skip
RUN = """
import json, runpy, sys
sys.argv = ["ftstudio", *json.loads(sys.argv[1])]
try:
    runpy.run_module("ftstudio", run_name="__main__")
except SystemExit as exc:
    code = exc.code or 0
else:
    code = 0
sys.stderr.write("\\nRESULT " + json.dumps({"code": code, "modules": sorted(sys.modules)}) + "\\n")
"""


@pytest.fixture
def searchable(workspace):
    project = ftstudio.Project.create("p", workspace)
    doc = workspace / "bread.md"
    doc.write_text("# Bread\n\nFeed the sourdough starter with flour and water every day.\n", encoding="utf-8")
    ftstudio.ingest(project, paths=[doc])
    return workspace


@pytest.mark.parametrize(
    "args", [["--help"], ["projects"], ["models"], ["search", "p", "starter"], ["docs", "p"]], ids=lambda a: a[0]
)
def test_a_listing_imports_nothing_heavy(searchable, args):
    env = {**os.environ, "FTSTUDIO_ROOT": str(searchable), "COLUMNS": "120"}
    proc = subprocess.run(
        [sys.executable, "-c", RUN, json.dumps(args)], capture_output=True, text=True, env=env, timeout=120
    )
    result = json.loads(proc.stderr.rpartition("RESULT ")[2])
    assert result["code"] == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip(), "the command printed nothing"
    loaded = {m.partition(".")[0] for m in result["modules"]}
    assert sorted(loaded & set(HEAVY)) == []
    if args[0] in ("--help", "projects", "docs"):  # pydantic alone costs more start-up than the rest of these
        assert "pydantic" not in loaded
    if args[0] == "--help":  # the listing is the table's: no command module is imported
        assert not {m for m in result["modules"] if m.startswith("ftstudio.cli.")} - {"ftstudio.cli.common"}
    if args[0] == "search":
        assert "bread.md" in proc.stdout  # the search really ran over the store


def test_the_command_table_is_what_the_modules_define():
    ctx = click.Context(app)
    modules = set()
    for name, (module, _, summary) in COMMANDS.items():
        command = app.get_command(ctx, name)
        assert isinstance(command, click.Command) and command.name == name
        # --help lists the table's summary without importing the command: it must be the command's own.
        assert summary == first_paragraph(command.help), name
        modules.add(sys.modules[f"ftstudio.cli.{module}"])
    listed = {id(app.get_command(ctx, name)) for name in COMMANDS}
    for module in modules:  # and no command is defined that the table leaves out (a group's own ones aside)
        for command in vars(module).values():
            if isinstance(command, click.Command) and id(command) not in listed:
                assert any(command in getattr(app.get_command(ctx, n), "commands", {}).values() for n in COMMANDS)


def test_the_package_loads_its_api_on_first_use():
    # The `ftstudio` command imports this package before it parses anything: it must not bring pydantic or the
    # settings models (issue 22), and the API names must still be the functions, the two that share their name with
    # a stage subpackage (train, export) included, whatever was imported first.
    code = (
        "import sys, ftstudio; before = 'pydantic' in sys.modules or 'ftstudio.api' in sys.modules\n"
        "import ftstudio.train.runner, ftstudio.export.settings\n"
        "from ftstudio import train\n"
        "print(before, callable(ftstudio.train), callable(ftstudio.export), train is ftstudio.train,"
        " ftstudio.Project.__name__, ftstudio.example_project.__name__)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "True", "True", "True", "Project", "ensure_example"]
    assert sorted(ftstudio.__all__) == sorted(n for n in dir(ftstudio) if n in ftstudio.__all__)
