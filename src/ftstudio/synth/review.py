"""Review before training: each line of sft_data.jsonl can be accepted, edited or rejected, keeping its provenance.

The decision lives in the line itself, `meta.review` = "accepted" or "rejected" (no key: not yet reviewed), so the
file stays the one truth and travels with its reviews. An edit replaces the question and answer, keeps every other
field and `meta` key (source chunks, helper, run), records `meta.edited` with the time, and counts as accepted.
Training never uses rejected lines; with `train.only_accepted` it uses accepted ones only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from ftstudio.dataset import Example, rewrite_lines
from ftstudio.errors import BadInput, NotFound
from ftstudio.project import Project
from ftstudio.synth.quality import words
from ftstudio.synth.state import now

Decision = Literal["accepted", "rejected", "pending"]
DECISIONS = ("accepted", "rejected", "pending")


def status(meta: dict[str, Any]) -> str:
    value = meta.get("review")
    return value if value in ("accepted", "rejected") else "pending"


def counts(examples: Iterable[Example]) -> dict[str, int]:
    """How many lines are accepted, rejected and pending (and how many of them were edited)."""
    found = {d: 0 for d in DECISIONS} | {"edited": 0}
    for e in examples:
        found[status(e.meta)] += 1
        found["edited"] += bool(e.meta.get("edited"))
    return found


def parse_lines(spec: str) -> list[int]:
    """Line numbers from "3,5-7"; BadInput naming the part that is not one."""
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
    if not lines:
        raise BadInput("no line numbers given", hint="write lines like 3,5-7")
    return lines


def _records(project: Project, lines: Sequence[int]) -> dict[int, dict[str, Any]]:
    if not project.sft_data.is_file():
        raise NotFound(f"no training data at {project.sft_data}", hint="generate or import data first")
    wanted = set(lines)
    found: dict[int, dict[str, Any]] = {}
    with project.sft_data.open(encoding="utf-8") as f:
        for number, raw in enumerate(f, 1):
            if number in wanted:
                try:
                    record = json.loads(raw)
                except ValueError:
                    record = None
                if not isinstance(record, dict):
                    raise BadInput(f"{project.sft_data}: line {number} is not a JSON object", hint="fix it first")
                found[number] = record
    missing = sorted(wanted - set(found))
    if missing:
        raise NotFound(f"{project.sft_data} has no line {missing[0]}", hint="`ftstudio data NAME` shows the lines")
    return found


def decide(project: Project, lines: Sequence[int], decision: Decision) -> int:
    """Mark these lines accepted, rejected or pending again; every other byte of the file is kept."""
    if decision not in DECISIONS:
        raise BadInput(f"unknown review decision {decision!r}", hint=f"use one of {', '.join(DECISIONS)}")
    changes = {}
    for number, record in _records(project, lines).items():
        meta = dict(record.get("meta") or {})
        if decision == "pending":
            meta.pop("review", None)
        else:
            meta["review"] = decision
        changes[number] = {**record, "meta": meta}
    return rewrite_lines(project.sft_data, changes)


def edit(project: Project, line: int, question: str, answer: str) -> dict[str, Any]:
    """Replace the last question and answer of one line, keeping its form, its other turns and its provenance."""
    if not question.strip() or not answer.strip():
        raise BadInput(f"line {line}: the question and the answer must not be empty", hint="type both, or reject it")
    record = dict(_records(project, [line])[line])
    if "messages" in record or "conversations" in record:
        chat = "messages" in record
        key, role, text = ("messages", "role", "content") if chat else ("conversations", "from", "value")
        turns = [dict(t) for t in record[key]]
        users = [i for i, t in enumerate(turns) if t.get(role) in ("user", "human")]
        if users:
            turns[users[-1]][text] = question
        turns[-1][text] = answer
        record[key] = turns
    else:
        record["instruction"], record["output"] = question, answer
        record.pop("input", None)  # the question shown (and edited) had the input folded into it
    meta = dict(record.get("meta") or {})
    meta.update(review="accepted", edited=now())
    record["meta"] = meta
    rewrite_lines(project.sft_data, {line: record})
    return record


def for_training(
    examples: Sequence[Example], *, only_accepted: bool, eval_questions: set[str]
) -> tuple[list[Example], list[str]]:
    """The examples training may use, and what was left out: rejected lines always, pending ones with
    `only_accepted`, and any whose question is an eval question (the eval set is never trained on)."""
    kept, rejected, pending, in_eval = [], 0, 0, 0
    for e in examples:
        decision = status(e.meta)
        if decision == "rejected":
            rejected += 1
        elif only_accepted and decision != "accepted":
            pending += 1
        elif eval_questions and " ".join(words(e.prompt)) in eval_questions:
            in_eval += 1
        else:
            kept.append(e)
    notes = []
    if rejected:
        notes.append(f"{rejected} rejected example(s) left out")
    if pending:
        notes.append(f"{pending} example(s) not yet accepted left out (train.only_accepted)")
    if in_eval:
        notes.append(f"{in_eval} example(s) asking an eval-set question left out")
    return kept, notes
