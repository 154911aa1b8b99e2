"""The knowledge report card of a run: did the tuned model learn the documents, and does it beat RAG?

For every question of the frozen eval set (synth/evalset.py) four answers are written, greedily: the base model,
the tuned model, and each of them given the top passages the knowledge store's search finds for the question
(`eval.passages`, asked in the same form as training's "with passages" lines). The judge (synth/judge.py) grades
each answer against the source passage and the reference. Accuracy is the share graded `correct`; `score` counts
`partly` as half. Both are given per condition overall and split by kind of question (held-out chunks, seen
chunks, paraphrases), with the per-question table. The card goes into the run's eval.json under "card", beside
the held-out loss report. A judge that cannot be reached leaves answers without verdicts and says so: accuracies
are then None, never 0.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ftstudio.dataset import Example, Message
from ftstudio.errors import FtError, NotFound, Unavailable
from ftstudio.fsutil import atomic_write_text
from ftstudio.progress import ProgressFn, report
from ftstudio.project import Project
from ftstudio.settings import EvalSettings
from ftstudio.synth import evalset, judge
from ftstudio.synth.mix import passages_prompt
from ftstudio.train.evaluate import generate
from ftstudio.train.formatting import Formatter

CONDITIONS = ("base", "tuned", "base_passages", "tuned_passages")
LABELS = {"base": "base", "tuned": "tuned", "base_passages": "base + passages", "tuned_passages": "tuned + passages"}


@dataclass(frozen=True)
class ReportCard:
    """A run's card. `status`: graded (every answer has a verdict), partial, or unjudged (no verdicts at all)."""

    run: str
    status: str
    eval_set_version: str
    judge: str | None
    questions: int
    conditions: dict[str, dict[str, Any]]
    splits: dict[str, dict[str, dict[str, Any]]]
    table: list[dict[str, Any]]
    judge_usage: dict[str, Any]
    warnings: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "warnings": list(self.warnings)}


def tally(verdicts: Sequence[str | None]) -> dict[str, Any]:
    """Counts and accuracy of a list of verdicts (None: not graded); accuracy None when nothing was graded."""
    graded = [v for v in verdicts if v is not None]
    counts = {v: graded.count(v) for v in judge.VERDICTS}
    n = len(graded)
    return {
        **counts,
        "graded": n,
        "accuracy": round(counts["correct"] / n, 4) if n else None,
        "score": round((counts["correct"] + 0.5 * counts["partly"]) / n, 4) if n else None,
    }


def summarize(table: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Per-condition results overall and per kind of question, from the table's verdicts."""

    def verdicts(rows, condition):
        return [row["answers"][condition]["verdict"] for row in rows]

    overall = {c: tally(verdicts(table, c)) for c in CONDITIONS}
    splits = {}
    for kind in evalset.KINDS:
        rows = [row for row in table if row["kind"] == kind]
        splits[kind] = {"questions": len(rows), **{c: tally(verdicts(rows, c)) for c in CONDITIONS}}
    return overall, splits


def _prompt_ids_messages(formatter: Formatter, content: str) -> list[dict[str, str]]:
    # Through the training formatter, so the system prompt is applied exactly as in training.
    example = Example((Message("user", content), Message("assistant", "-")), "openai")
    return formatter.messages(example)[:-1]


def retrieve(project: Project, question: str, k: int) -> list[tuple[int, str]]:
    """(id, text) of the `k` chunks the knowledge store's search ranks first for `question` (none without a store)."""
    from ftstudio.knowledge.store import search_store

    return [(hit.chunk.id, hit.chunk.text) for hit in search_store(project.knowledge_db, question, k)]


def answer_all(
    project: Project, model, formatter: Formatter, items: Sequence[evalset.EvalItem], *, passages: int,
    max_new_tokens: int, progress: ProgressFn | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """The four answers to each item (greedy; the base model is the tuned one with its adapter switched off), and
    the ids of the passages the "+passages" answers were given."""
    answers = []
    for n, item in enumerate(items, 1):
        found = retrieve(project, item.question, passages)
        with_passages = passages_prompt(item.question, [text for _, text in found]) if found else item.question
        plain, rag = (_prompt_ids_messages(formatter, text) for text in (item.question, with_passages))
        row: dict[str, Any] = {"passages": [cid for cid, _ in found],
                               "tuned": generate(model, formatter, plain, max_new_tokens),
                               "tuned_passages": generate(model, formatter, rag, max_new_tokens)}  # fmt: skip
        with model.disable_adapter():
            row["base"] = generate(model, formatter, plain, max_new_tokens)
            row["base_passages"] = generate(model, formatter, rag, max_new_tokens)
        answers.append(row)
        report(progress, "answer", n, len(items), item.question[:60])
    return answers


def require_eval_set(project: Project) -> evalset.EvalSet:
    """The project's eval set; NotFound with the fix when it has none."""
    frozen = evalset.load(project)
    if frozen is None or not frozen.items:
        raise NotFound(
            f"project {project.name!r} has no eval set (data/eval_set.jsonl)",
            hint=f"make one, best before training: `ftstudio data {project.name} --make-eval 40`",
        )
    return frozen


def build_card(
    project: Project,
    run_id: str,
    model,
    formatter: Formatter,
    *,
    eval_settings: EvalSettings | None = None,
    api_key: str | None = None,
    provider=None,
    progress: ProgressFn | None = None,
) -> ReportCard:
    """Answer the eval set with `model` (a PEFT model: adapter on = tuned, off = base) and grade the answers, with
    `eval_settings` (this run's, from an EvaluateRequest; default: the project's `[eval]`).

    Raises NotFound when the project has no eval set. An unreachable judge gives an `unjudged` card with a warning.
    """
    frozen = require_eval_set(project)
    settings = project.settings()
    chosen = eval_settings or settings.eval
    answers = answer_all(
        project, model, formatter, frozen.items, passages=chosen.passages,
        max_new_tokens=chosen.max_new_tokens, progress=progress,
    )  # fmt: skip
    requests = [
        judge.GradeRequest(item.passage, item.question, item.reference, row[c])
        for item, row in zip(frozen.items, answers, strict=True)
        for c in CONDITIONS
    ]
    warnings: list[str] = []
    try:
        graded = judge.grade(
            project, settings.synth, chosen, requests, api_key=api_key,
            provider=provider, progress=progress,
        )  # fmt: skip
        verdicts, judge_name, usage = list(graded.verdicts), graded.judge, graded.usage
        warnings += graded.warnings
        if graded.cached:
            report(progress, "judge", message=f"{graded.cached} verdicts from the cache")
    except Unavailable as exc:
        verdicts, judge_name, usage = [None] * len(requests), None, {}
        warnings.append(f"no verdicts: {exc.message}" + (f" ({exc.hint})" if exc.hint else ""))
    table = []
    for i, (item, row) in enumerate(zip(frozen.items, answers, strict=True)):
        cells = {}
        for j, c in enumerate(CONDITIONS):
            v = verdicts[i * len(CONDITIONS) + j]
            cells[c] = {"answer": row[c], "verdict": v.verdict if v else None, "reason": v.reason if v else None}
        table.append({"id": item.id, "kind": item.kind, "question": item.question, "reference": item.reference,
                      "passages": row["passages"], "answers": cells})  # fmt: skip
    overall, splits = summarize(table)
    n_graded = sum(v is not None for v in verdicts)
    status = "graded" if n_graded == len(verdicts) else "partial" if n_graded else "unjudged"
    return ReportCard(run_id, status, frozen.version, judge_name, len(frozen.items), overall, splits, table, usage,
                      tuple(warnings))  # fmt: skip


def save_card(run_dir, card: ReportCard) -> dict[str, Any]:
    """Put the card into the run's eval.json (beside the loss report) and return the whole report."""
    path = run_dir / "eval.json"
    data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    data["card"] = card.to_dict()
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    return data


def at_end_of_training(project: Project, run_id: str, model, formatter: Formatter, progress) -> ReportCard | None:
    """The card at the end of a run when the project has an eval set and a helper model; None (said) otherwise."""
    settings = project.settings()
    if evalset.load(project) is None:
        report(progress, "card", message="no eval set: no report card (`ftstudio data NAME --make-eval N` makes one)")
        return None
    if not (settings.eval.judge_model or settings.synth.model):
        report(progress, "card", message="no helper model to judge with: no report card")
        return None
    try:
        return build_card(project, run_id, model, formatter, progress=progress)
    except FtError as exc:  # the run itself succeeded; the card can be made later with `ftstudio eval`
        report(progress, "card", message=f"no report card: {exc.message}")
        return None


def evaluate_run(
    project: Project,
    run_id: str | None = None,
    *,
    eval_settings: EvalSettings | None = None,
    api_key: str | None = None,
    provider=None,
    progress: ProgressFn | None = None,
) -> ReportCard:
    """`ftstudio eval`: load a completed run (the newest by default), make its card and save it in eval.json."""
    from ftstudio.train.chat import load_chat, pick_run

    run = pick_run(project, run_id)
    require_eval_set(project)  # before loading the model: fail fast
    report(progress, "load", message=f"loading {run.base_model} with run {run.id}'s adapter")
    chat = load_chat(project, run.id)
    card = build_card(project, run.id, chat.model, chat.formatter, eval_settings=eval_settings, api_key=api_key,
                      provider=provider, progress=progress)  # fmt: skip
    save_card(run.path, card)
    return card
