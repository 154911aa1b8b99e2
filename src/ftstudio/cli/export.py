"""`ftstudio export`: a training run to an adapter, a merged model or a GGUF (+ Modelfile, + Ollama)."""

from pathlib import Path

import click

from ftstudio.cli.common import emit, json_option, out, overrides, progress_bar, root_option, save_option, set_option
from ftstudio.export.settings import QUANTS, ExportSettings

_FIELDS = ExportSettings.model_fields


@click.command("export")
@click.argument("name", help="Project name.")
@click.option("--format", help="adapter | merged | gguf. " + _FIELDS["format"].description)
@click.option("--run", help="Run id; default: the latest completed run.")
@click.option("--quant", help=f"GGUF type: {', '.join(QUANTS)}.")
@click.option("--to-ollama", help="Install the GGUF into Ollama as NAME[:TAG] ($OLLAMA_HOST).")
@click.option("--verify/--no-verify", default=None, help=_FIELDS["verify"].description)
@set_option
@save_option
@root_option
@json_option
def export(
    name: str,
    format: str | None,
    run: str | None,
    quant: str | None,
    to_ollama: str | None,
    verify: bool | None,
    set_: tuple[str, ...],
    save: bool,
    root: Path | None,
    json: bool,
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
