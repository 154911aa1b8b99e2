"""`ftstudio data`: validate and summarise data/sft_data.jsonl; import and export other forms; review pairs; make
the frozen eval set (data/eval_set.jsonl)."""

from pathlib import Path
from typing import Annotated, Literal

import typer

from ftstudio.cli.common import JsonOpt, RootOpt, SaveOpt, SetOpt, emit, err, out, overrides
from ftstudio.requests import EvalSetRequest
from ftstudio.synth.settings import ProviderName


def _eval_help(field: str) -> str:
    return "With --make-eval: " + (EvalSetRequest.model_fields[field].description or "")


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
    accept: Annotated[str | None, typer.Option(help="Accept these lines in review, e.g. 1,4-9.")] = None,  # noqa: UP007
    reject: Annotated[str | None, typer.Option(help="Reject these lines: never trained on.")] = None,  # noqa: UP007
    edit: Annotated[int | None, typer.Option(help="Edit this line (with --question/--answer); keeps its meta.")] = None,  # noqa: UP007,E501
    question: Annotated[str | None, typer.Option(help="With --edit: the new question.")] = None,  # noqa: UP007
    answer: Annotated[str | None, typer.Option(help="With --edit: the new answer.")] = None,  # noqa: UP007
    make_eval: Annotated[
        int | None,  # noqa: UP007
        typer.Option("--make-eval", help=EvalSetRequest.model_fields["make_eval"].description),
    ] = None,
    fresh: Annotated[bool, typer.Option(help="With --make-eval: replace an existing eval set.")] = False,
    max_cost: Annotated[float | None, typer.Option(help="With --make-eval: stop before spending more USD.")] = None,  # noqa: UP007
    provider: Annotated[ProviderName | None, typer.Option(help=_eval_help("provider"))] = None,  # noqa: UP007
    model: Annotated[str | None, typer.Option(help=_eval_help("model"))] = None,  # noqa: UP007
    base_url: Annotated[str | None, typer.Option(help=_eval_help("base_url"))] = None,  # noqa: UP007
    set_: SetOpt = None,
    save: SaveOpt = False,
    root: RootOpt = None,
    json: JsonOpt = False,
) -> None:
    """Validate data/sft_data.jsonl (bad lines by number, exit 1 if any) and show statistics and review counts.

    --accept/--reject/--edit review pairs (training skips rejected ones; train.only_accepted limits it to accepted
    ones). --make-eval N writes the frozen eval set with the project's helper (synth.provider/model), or with the
    one --provider/--model/--base-url name for this run, or, when neither names a model, with the helper of the
    last `ftstudio generate` run (its provider, model and base URL; it says which); the API key comes from the
    environment. With it,
    --set KEY=VALUE changes an eval setting (held_out_share, per_chunk, ...) for this run; --save also stores it,
    and the helper named, in project.toml, once the eval set was written.
    """
    from ftstudio.project import Project
    from ftstudio.synth import datafile

    project = Project.open(name, root)
    if make_eval is not None:
        request = EvalSetRequest.build(make_eval=make_eval, fresh=fresh, max_cost=max_cost, provider=provider,
                                       model=model, base_url=base_url, overrides=overrides({}, set_),
                                       save=save)  # fmt: skip
        return _make_eval(project, request, json)
    if accept or reject or edit is not None:
        return _review(project, accept, reject, edit, question, answer, json)
    if show_mask:
        from ftstudio.cli.train import print_mask
        from ftstudio.train.preview import mask_preview
        from ftstudio.train.runner import resolve_base_model

        preview = mask_preview(project, project.settings().train, resolve_base_model(project), line)
        return emit(preview.to_dict(), json, lambda: print_mask(preview))
    if delete is not None:
        result = datafile.delete_lines(project, delete)
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


def _make_eval(project, request: EvalSetRequest, json_mode: bool) -> None:
    import ftstudio
    from ftstudio.cli.common import progress_bar

    with progress_bar("eval set") as bar:
        result = ftstudio.make_eval_set(project, request, progress=bar)
    data = result.to_dict()

    def human() -> None:
        kinds = ", ".join(f"{k} {v}" for k, v in result.by_kind.items())
        out.print(f"Wrote {result.questions} eval questions ({kinds}) to {result.path}, version {result.version}")
        h = result.helper
        at = f" at {h['base_url']}" if h.get("base_url") else ""
        out.print(f"helper: {h.get('provider')}:{h.get('model')}{at} (from {h.get('from')})")
        dropped = ", ".join(f"{k} {v}" for k, v in sorted(result.dropped.items())) or "none"
        out.print(f"requests {result.usage['requests']}, cost ${result.usage['cost_usd']:.4f}; dropped: {dropped}")

    emit(data, json_mode, human)
    for warning in result.warnings:
        err.print(f"warning: {warning}", markup=False)


def _review(project, accept, reject, edit, question, answer, json_mode: bool) -> None:
    from ftstudio.dataset import read_dataset
    from ftstudio.errors import BadInput
    from ftstudio.synth import review

    changed = 0
    if edit is not None:
        if question is None or answer is None:
            raise BadInput("--edit needs --question and --answer", hint="give both texts of the edited pair")
        review.edit(project, edit, question, answer)
        changed += 1
    for spec, decision in ((accept, "accepted"), (reject, "rejected")):
        if spec:
            changed += review.decide(project, review.parse_lines(spec), decision)
    counts = review.counts(read_dataset(project.sft_data).examples)
    shown = ", ".join(f"{k} {v}" for k, v in counts.items())
    emit({"changed": changed, "review": counts}, json_mode, lambda: out.print(f"{changed} line(s) changed; {shown}"))


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
    out.print("review: " + ", ".join(f"{k} {v}" for k, v in s["review"].items()))
    if s.get("eval_set"):
        e = s["eval_set"]
        out.print(f"eval set: {e['questions']} questions, version {e['version']} ({e['by_kind']})")
    if cov:
        out.print(f"coverage: {cov['chunks_used']} of {cov['chunks']} chunks")
        for d in cov["documents"]:
            out.print(f"  {d['document']}: {d['chunks_used']}/{d['chunks']}")
    if s["bad_lines"]:
        out.print(f"{len(s['bad_lines'])} bad line(s), listed on stderr")
