"""`ftstudio data`: validate and summarise data/sft_data.jsonl; import and export other forms."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from ftstudio.cli.common import JsonOpt, RootOpt, emit, err, out


def register(app: typer.Typer) -> None:
    app.command("data")(data)


def data(
    name: Annotated[str, typer.Argument(help="Project name.")],
    import_: Annotated[
        Path | None,  # noqa: UP007
        typer.Option("--import", help="Add this ShareGPT/OpenAI/Alpaca JSONL file in canonical form (appended)."),
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="With --import: replace the data instead (a backup copy is kept).")
    ] = False,
    delete: Annotated[
        str | None,  # noqa: UP007
        typer.Option("--delete", help="Delete these lines, e.g. 3 or 3,5-7 (the others keep their provenance)."),
    ] = None,
    export: Annotated[
        Path | None,  # noqa: UP007
        typer.Option("--export", help="Write the data to this file; lines left out are listed (exit 1 if any)."),
    ] = None,
    to: Annotated[Literal["sharegpt", "openai", "alpaca"], typer.Option("--to", help="Form for --export.")] = "openai",
    show_mask: Annotated[
        bool, typer.Option(help="Show one example as the base model will train on it, trained tokens marked.")
    ] = False,
    line: Annotated[int | None, typer.Option(help="With --show-mask: the data line to show.")] = None,
    root: RootOpt = None,
    json: JsonOpt = False,
) -> None:
    """Validate data/sft_data.jsonl (bad lines by number, exit 1 if any) and show statistics."""
    from ftstudio.project import Project
    from ftstudio.synth import datafile

    project = Project.open(name, root)
    if show_mask:
        from ftstudio.cli.train import print_mask
        from ftstudio.train.preview import mask_preview
        from ftstudio.train.runner import resolve_base_model

        preview = mask_preview(project, project.settings().train, resolve_base_model(project), line)
        return emit(preview.to_dict(), json, lambda: print_mask(preview))
    if delete is not None:
        result = datafile.delete_lines(project, parse_lines(delete))
        return emit(result, json, lambda: out.print(f"Deleted {result['deleted']} line(s) of {result['data']}"))
    if import_ is not None:
        result = datafile.import_file(project, import_, "replace" if replace else "append")
        kept = f" (the previous data is in {result['backup']})" if result["backup"] else ""
        emit(result, json, lambda: out.print(f"Imported {result['imported']} examples into {result['data']}{kept}"))
        _report_bad(result["bad_lines"], import_)
        raise typer.Exit(1 if result["bad_lines"] else 0)
    if export is not None:
        result = datafile.export_file(project, export, to)
        emit(result, json, lambda: out.print(f"Exported {result['exported']} examples as {to} to {export}"))
        _report_bad(result["skipped"], project.sft_data, "left out")
        raise typer.Exit(1 if result["skipped"] else 0)
    summary = datafile.summarize(project, project.settings().synth.duplicate_threshold)
    emit(summary, json, lambda: _render(summary))
    _report_bad(summary["bad_lines"], project.sft_data)
    raise typer.Exit(1 if summary["bad_lines"] else 0)


def _report_bad(bad: list[dict], path: Path, what: str = "") -> None:
    for b in bad:
        err.print(f"{path}: line {b['line']}: {what + ': ' if what else ''}{b['error']}")


def _render(s: dict) -> None:
    out.print(f"{s['path']}: {s['examples']} examples ({', '.join(f'{k} {v}' for k, v in s['forms'].items())})")
    for key in ("question_words", "answer_words"):
        d = s[key]
        out.print(f"{key.replace('_', ' ')}: min {d['min']}, median {d['median']}, mean {d['mean']}, max {d['max']}")
    out.print(f"duplicates: {s['duplicates']['exact']} exact, {s['duplicates']['near']} near")
    cov = s["coverage"]
    if cov:
        out.print(f"coverage: {cov['chunks_used']} of {cov['chunks']} chunks")
        for d in cov["documents"]:
            out.print(f"  {d['document']}: {d['chunks_used']}/{d['chunks']}")
    if s["bad_lines"]:
        out.print(f"{len(s['bad_lines'])} bad line(s), listed on stderr")


def parse_lines(spec: str) -> list[int]:
    """Line numbers from "3,5-7"; BadInput naming the part that is not one."""
    from ftstudio.errors import BadInput

    lines: list[int] = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        low, _, high = part.partition("-")
        try:
            a, b = int(low), int(high or low)
        except ValueError:
            raise BadInput(f"{part!r} is not a line number or range", hint="write lines like 3,5-7") from None
        if a < 1 or b < a:
            raise BadInput(f"{part!r} is not a line range", hint="lines count from 1; write ranges low-high")
        lines += range(a, b + 1)
    return lines
