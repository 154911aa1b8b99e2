"""`ftstudio eval`: the knowledge report card of a run (base, tuned, and both with passages, graded by the judge)."""

from typing import Annotated

import typer

from ftstudio.cli.common import JsonOpt, RootOpt, SaveOpt, SetOpt, emit, err, out, overrides, progress_bar
from ftstudio.requests import EvaluateRequest
from ftstudio.settings import EvalSettings


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_run)


def eval_run(
    name: Annotated[str, typer.Argument(help="Project name.")],
    run: Annotated[str | None, typer.Option(help=EvaluateRequest.model_fields["run"].description)] = None,  # noqa: UP007
    judge_model: Annotated[
        str | None,  # noqa: UP007
        typer.Option(help=EvalSettings.model_fields["judge_model"].description),
    ] = None,
    set_: SetOpt = None,
    save: SaveOpt = False,
    root: RootOpt = None,
    json: JsonOpt = False,
) -> None:
    """Answer the frozen eval set with the base and the tuned model, without and with the top passages, have the
    judge grade every answer, and save the card in the run's eval.json. An unreachable judge leaves the answers
    ungraded with a warning (exit 0); accuracies are then empty, not zero.

    --judge-model and --set KEY=VALUE (any [eval] setting: passages, max_new_tokens, ...) apply to this run; --save
    also stores them in project.toml, once the card was made.
    """
    import ftstudio
    from ftstudio.project import Project

    project = Project.open(name, root)
    request = EvaluateRequest.build(run=run, overrides=overrides({"judge_model": judge_model}, set_), save=save)
    with progress_bar("report card") as bar:
        card = ftstudio.report_card(project, request, progress=bar)
    emit(card.to_dict(), json, lambda: print_card(card.to_dict()))
    for warning in card.warnings:
        err.print(f"warning: {warning}", markup=False)


def print_card(card: dict) -> None:
    """The card as a small table: accuracy per condition, overall and per kind of question."""
    from ftstudio.train.card import CONDITIONS, LABELS

    def pct(cell: dict) -> str:
        if cell["accuracy"] is None:
            return "—"
        return f"{cell['accuracy'] * 100:.0f}% ({cell['correct']}/{cell['graded']})"

    out.print(f"report card of run {card['run']}: {card['questions']} questions (eval set {card['eval_set_version']}), "
              f"judge {card['judge'] or 'none'}, {card['status']}", markup=False)  # fmt: skip
    out.print(f"{'':18}" + "".join(f"{LABELS[c]:>20}" for c in CONDITIONS))
    out.print(f"{'all':18}" + "".join(f"{pct(card['conditions'][c]):>20}" for c in CONDITIONS))
    for kind, split in card["splits"].items():
        label = f"{kind} ({split['questions']})"
        out.print(f"{label:18}" + "".join(f"{pct(split[c]):>20}" for c in CONDITIONS))
