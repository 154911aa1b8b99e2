"""`ftstudio export`: a training run to an adapter, a merged model or a GGUF (+ Modelfile, + Ollama)."""

from typing import Annotated

import typer

from ftstudio.cli.common import JsonOpt, RootOpt, SaveOpt, SetOpt, emit, out, overrides, progress_bar
from ftstudio.export.settings import QUANTS, ExportSettings

_FIELDS = ExportSettings.model_fields


def register(app: typer.Typer) -> None:
    app.command("export")(export)


def export(
    name: Annotated[str, typer.Argument(help="Project name.")],
    format: Annotated[
        str | None, typer.Option("--format", help="adapter | merged | gguf. " + _FIELDS["format"].description)
    ] = None,
    run: Annotated[str | None, typer.Option("--run", help="Run id; default: the latest completed run.")] = None,
    quant: Annotated[str | None, typer.Option("--quant", help=f"GGUF type: {', '.join(QUANTS)}.")] = None,
    to_ollama: Annotated[
        str | None, typer.Option("--to-ollama", help="Install the GGUF into Ollama as NAME[:TAG] ($OLLAMA_HOST).")
    ] = None,
    verify: Annotated[
        bool | None, typer.Option("--verify/--no-verify", help=_FIELDS["verify"].description, show_default=False)
    ] = None,
    set_: SetOpt = None,
    save: SaveOpt = False,
    root: RootOpt = None,
    json: JsonOpt = False,
) -> None:
    """Export a training run into the project's exports/ folder.

    --format, --quant, --verify and --set KEY=VALUE apply to this export; --save also stores them in project.toml.
    """
    import ftstudio
    from ftstudio.project import Project
    from ftstudio.requests import ExportRequest

    project = Project.open(name, root)
    changes = overrides({"format": format, "quant": quant, "verify": verify}, set_)
    request = ExportRequest.build(run=run, to_ollama=to_ollama, overrides=changes, save=save)
    with progress_bar(f"export {name}") as progress:
        result = ftstudio.export(project, request, progress=progress)

    def human() -> None:
        for f in result.files:
            out.print(f"wrote {f['path']} ({f['size'] / 2**20:,.1f} MiB)")
        if result.verification:
            v = result.verification
            out.print(f"verified in llama.cpp: {len(v['prompts'])} prompts agree with transformers, "
                      f"{v['end_of_turn']} ends a turn")  # fmt: skip
        if result.ollama:
            out.print(f"installed into Ollama at {result.ollama['host']}: ollama run {result.ollama['model']}")
        elif result.ollama_command:
            out.print(f"to use it in Ollama: {result.ollama_command}")

    emit(result.to_dict(), json, human)
