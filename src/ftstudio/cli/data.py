"""`ftstudio data`: validate and summarise data/sft_data.jsonl; import and export other forms; review pairs; make
the frozen eval set (data/eval_set.jsonl)."""

import sys
from pathlib import Path
from typing import get_args

import click

from ftstudio.cli.common import PATH, emit, err, json_option, out, overrides, root_option, save_option, set_option
from ftstudio.requests import EvalSetRequest
from ftstudio.synth.settings import ProviderName


def _eval_help(field: str) -> str:
    return "With --make-eval: " + (EvalSetRequest.model_fields[field].description or "")


@click.command("data")
@click.argument("name", help="Project name.")
@click.option(
    "--import", "import_", type=PATH, help="Add this ShareGPT/OpenAI/Alpaca JSONL file in canonical form (appended)."
)
@click.option("--replace", is_flag=True, help="With --import: replace the data instead (a backup copy is kept).")
@click.option("--delete", help="Delete these lines, e.g. 3 or 3,5-7 (the others keep their provenance).")
@click.option("--export", type=PATH, help="Write the data to this file; lines left out are listed (exit 1 if any).")
@click.option("--to", type=click.Choice(["sharegpt", "openai", "alpaca"]), default="openai", help="Form for --export.")
@click.option(
    "--show-mask/--no-show-mask", help="Show one example as the base model will train on it, trained tokens marked."
)
@click.option("--line", type=int, help="With --show-mask: the data line to show.")
@click.option("--accept", help="Accept these lines in review, e.g. 1,4-9.")
@click.option("--reject", help="Reject these lines: never trained on.")
@click.option("--edit", type=int, help="Edit this line (with --question/--answer); keeps its meta.")
@click.option("--question", help="With --edit: the new question.")
@click.option("--answer", help="With --edit: the new answer.")
@click.option("--make-eval", type=int, help=EvalSetRequest.model_fields["make_eval"].description)
@click.option("--fresh/--no-fresh", help="With --make-eval: replace an existing eval set.")
@click.option("--max-cost", type=float, help="With --make-eval: stop before spending more USD.")
@click.option("--provider", type=click.Choice(get_args(ProviderName)), help=_eval_help("provider"))
@click.option("--model", help=_eval_help("model"))
@click.option("--base-url", help=_eval_help("base_url"))
@set_option
@save_option
@root_option
@json_option
def data(
    name: str,
    import_: Path | None,
    replace: bool,
    delete: str | None,
    export: Path | None,
    to: str,
    show_mask: bool,
    line: int | None,
    accept: str | None,
    reject: str | None,
    edit: int | None,
    question: str | None,
    answer: str | None,
    make_eval: int | None,
    fresh: bool,
    max_cost: float | None,
    provider: str | None,
    model: str | None,
    base_url: str | None,
    set_: tuple[str, ...],
    save: bool,
    root: Path | None,
    json: bool,
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
        sys.exit(1 if result["bad_lines"] else 0)
    if export is not None:
        result = datafile.export_file(project, export, to)
        emit(result, json, lambda: out.print(f"Exported {result['exported']} examples as {to} to {export}"))
        _report_bad(result["skipped"], project.sft_data, "left out")
        sys.exit(1 if result["skipped"] else 0)
    summary = datafile.summarize(project, project.settings().synth.duplicate_threshold)
    emit(summary, json, lambda: _render(summary))
    _report_bad(summary["bad_lines"], project.sft_data)
    sys.exit(1 if summary["bad_lines"] else 0)


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
