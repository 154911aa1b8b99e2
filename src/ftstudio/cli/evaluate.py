"""`ftstudio eval`: the knowledge report card of a run (base, tuned, and both with passages, graded by the judge)."""

from pathlib import Path

import click

from ftstudio.cli.common import (
    emit,
    err,
    json_option,
    out,
    overrides,
    progress_bar,
    root_option,
    save_option,
    set_option,
)
from ftstudio.requests import EvaluateRequest
from ftstudio.settings import EvalSettings


@click.command("eval")
@click.argument("name", help="Project name.")
@click.option("--run", help=EvaluateRequest.model_fields["run"].description)
@click.option("--judge-model", help=EvalSettings.model_fields["judge_model"].description)
@set_option
@save_option
@root_option
@json_option
def eval_run(
    name: str,
    run: str | None,
    judge_model: str | None,
    set_: tuple[str, ...],
    save: bool,
    root: Path | None,
    json: bool,
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
