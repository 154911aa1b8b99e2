"""The Python API: one function per pipeline step, each over a project and a request (see ftstudio.requests).

Every function takes the project, a request (or its fields and settings overrides as keyword arguments:
`train(project, max_steps=20)`), an optional `progress` callback (ftstudio.progress.Event) and an optional `cancel`
(a threading.Event: set it and the work stops at the next safe point, raising Cancelled or returning a stopped
result), and returns a frozen result. The CLI commands and the studio's jobs call these same functions. Heavy
libraries (torch, transformers) are imported inside the steps that need them.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from ftstudio.errors import Cancelled
from ftstudio.progress import Event, ProgressFn, report
from ftstudio.project import Project
from ftstudio.requests import (
    ChatRequest,
    CheckRequest,
    EvalSetRequest,
    EvaluateRequest,
    ExportRequest,
    GenerateRequest,
    IngestRequest,
    Request,
    SearchRequest,
    TrainRequest,
)

if TYPE_CHECKING:
    from ftstudio.basemodels.checks import CheckResult
    from ftstudio.export.exporter import ExportResult
    from ftstudio.knowledge.ingest import IngestReport
    from ftstudio.knowledge.store import SearchHit
    from ftstudio.synth.evalset import EvalSetResult
    from ftstudio.train.card import ReportCard
    from ftstudio.train.runner import TrainResult

R = TypeVar("R", bound=Request)


def request_of(kind: type[R], request: R | None, values: dict[str, Any]) -> R:
    """`request` as given, or built from keyword values: its own fields, and settings of its stage as overrides."""
    if request is not None:
        if values:
            raise TypeError("pass either a request or keyword values, not both")
        return request
    own = {k: v for k, v in values.items() if k in kind.model_fields}
    overrides = {**values.pop("overrides", {}), **{k: v for k, v in values.items() if k not in own}}
    return kind.build(**own, overrides=overrides)  # type: ignore[return-value]


def watched(progress: ProgressFn | None, cancel: threading.Event | None) -> ProgressFn | None:
    """A progress callback that raises Cancelled once `cancel` is set (the stage stops at its next report)."""
    if cancel is None:
        return progress

    def forward(event: Event) -> None:
        if cancel.is_set():
            raise Cancelled(f"{event.stage} stopped", hint="what was finished is kept")
        if progress is not None:
            progress(event)

    return forward


# -- results that the stages return as plain dicts -------------------------------------------------------------------


@dataclass(frozen=True)
class GenerateResult:
    """One generation run: what it wrote, what it dropped and why, and what it cost."""

    run: str
    status: str  # done, or stopped (then `stop_reason`: cancelled, max_cost, ...)
    stop_reason: str | None
    written: int
    target: int
    dropped: dict[str, int]
    requests: int
    retries: int
    failures: int
    tokens: dict[str, int]
    cost_usd: float
    seconds: float
    data: str
    partial: bool = False  # it wrote pairs and stopped short for a stated reason (not cancelled): exit code 1
    stopped_because: str | None = None  # the reason in words, when it stopped short
    to_get_more: str | None = None  # what would give more pairs
    extra: dict[str, Any] = field(default_factory=dict)  # mode, topic, provider, model

    @classmethod
    def from_summary(cls, summary: dict[str, Any]) -> GenerateResult:
        known = {k: summary[k] for k in cls.__dataclass_fields__ if k in summary}
        return cls(**known, extra={k: v for k, v in summary.items() if k not in cls.__dataclass_fields__})

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {**data.pop("extra"), **data}


@dataclass(frozen=True)
class EvaluateResult:
    """Base against tuned model on the run's held-out split: eval losses and answers side by side."""

    run: str
    base_eval_loss: float | None
    tuned_eval_loss: float | None
    improved: bool | None
    answers: tuple[dict[str, Any], ...]
    report: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"run": self.run, **self.report}


@dataclass(frozen=True)
class ChatResult:
    run: str
    answer: str
    base_answer: str | None = None  # with compare: the base model alone
    sources: tuple[str, ...] = ()  # with passages: where each passage came from

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DataImportResult:
    """What `import_data` added to data/sft_data.jsonl, what it left out, and where the previous data was kept."""

    imported: int
    mode: str  # append or replace
    backup: str | None  # replace: the copy of the data before it (None when there was none)
    source: str
    bad_lines: tuple[dict[str, Any], ...]  # left out: {"line": number, "error": why}
    data: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DataEditResult:
    line: int
    record: dict[str, Any]  # the line as written: new question and answer, its meta kept (+ review, edited)
    data: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DataReviewResult:
    changed: int
    review: dict[str, int]  # the data's review counts after the change: accepted, rejected, pending, edited

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DataDeleteResult:
    deleted: int
    lines: tuple[int, ...]
    data: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- the steps ---------------------------------------------------------------------------------------------------


def ingest(
    project: Project,
    request: IngestRequest | None = None,
    *,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    **values: Any,
) -> IngestReport:
    """Load files and folders into the project's knowledge store (see ftstudio.knowledge.ingest)."""
    from ftstudio.knowledge.ingest import ingest as run

    request = request_of(IngestRequest, request, values)
    report = run(project, request.paths, request.resolve(project), watched(progress, cancel))
    request.store(project)
    return report


def search(project: Project, request: SearchRequest | None = None, **values: Any) -> tuple[SearchHit, ...]:
    """The best matching chunks for a query, ranked by BM25 (empty when nothing is ingested yet)."""
    from ftstudio.knowledge.store import search_store

    request = request_of(SearchRequest, request, values)
    return tuple(search_store(project.knowledge_db, request.query, request.k))


def check_model(
    project: Project | None,
    request: CheckRequest | None = None,
    *,
    progress: ProgressFn | None = None,
    **values: Any,
) -> CheckResult:
    """Can the base model (the request's, else the project's) be trained and exported here? Planned with the
    project's training settings (method, sequence length, batch, rank) and its trust_remote_code, so every face
    gets the same verdict; with no project, with those of a new project. A .gguf file or ollama:NAME[:TAG] is
    imported first (dequantized once into ftstudio's cache, reporting to `progress`) and checked as that folder."""
    from ftstudio.basemodels.checks import check_model as run
    from ftstudio.basemodels.settings import BaseModelSettings
    from ftstudio.errors import BadInput

    request = request_of(CheckRequest, request, values)
    plan = request.plan(project)
    chosen = project.settings().base_model if project is not None else BaseModelSettings()
    model = request.model or chosen.model
    if not model:
        raise BadInput("model: no base model chosen", hint="name one (a hub id or a local folder)")
    trust = chosen.trust_remote_code if request.trust_remote_code is None else request.trust_remote_code
    return run(model, trust_remote_code=trust, progress=progress, **plan)


def generate(
    project: Project,
    request: GenerateRequest | None = None,
    *,
    api_key: str | None = None,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    **values: Any,
) -> GenerateResult:
    """Have the helper model write grounded pairs into data/sft_data.jsonl (resuming an unfinished run first).

    `api_key` (for cloud providers) is used for this call only; the environment's key otherwise.
    """
    from ftstudio.synth.generate import generate as run

    request = request_of(GenerateRequest, request, values)
    summary = run(project, request.resolve(project), request.pairs, topic=request.topic,
                  topic_only=request.topic_only, max_cost=request.max_cost, api_key=api_key, fresh=request.fresh,
                  progress=progress, cancel=cancel, on_ready=lambda: request.store(project))  # fmt: skip
    return GenerateResult.from_summary(summary)


def train(
    project: Project,
    request: TrainRequest | None = None,
    *,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    **values: Any,
) -> TrainResult:
    """Train a LoRA/QLoRA adapter on the project's data into runs/<run-id>/ (see ftstudio.train.runner)."""
    from ftstudio.train.runner import train as run

    request = request_of(TrainRequest, request, values)
    return run(project, request.resolve(project), resume=request.resume, progress=progress, cancel=cancel,
               probe_only=request.probe_only, base_model=request.base_model,
               on_ready=lambda model: request.store(project, model))  # fmt: skip


def evaluate(project: Project, request: EvaluateRequest | None = None, **values: Any) -> EvaluateResult:
    """The run's base-versus-tuned comparison on its held-out split (written when the run completed)."""
    from ftstudio.errors import NotFound
    from ftstudio.train.chat import pick_run

    request = request_of(EvaluateRequest, request, values)
    run = pick_run(project, request.run)
    found = run.eval_report()
    if not found:
        raise NotFound(f"run {run.id} has no evaluation (eval.json)", hint="it is written when a run completes")
    return EvaluateResult(run.id, found.get("base_eval_loss"), found.get("tuned_eval_loss"), found.get("improved"),
                          tuple(found.get("answers", [])), found)  # fmt: skip


def make_eval_set(
    project: Project,
    request: EvalSetRequest | None = None,
    *,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    **values: Any,
) -> EvalSetResult:
    """Have the project's helper (or the request's, for this run; with neither, the last generation run's) write the
    frozen eval set (data/eval_set.jsonl; see ftstudio.synth.evalset); the result's `helper` says which it used.
    With `save`, the request's settings and helper are stored once the set is written."""
    from ftstudio.synth.evalset import make_eval_set as run

    request = request_of(EvalSetRequest, request, values)
    eval_settings = request.resolve(project)
    helper, helper_from = request.helper_choice(project)
    result = run(project, helper, eval_settings, request.make_eval, fresh=request.fresh, max_cost=request.max_cost,
                 progress=watched(progress, cancel), helper_from=helper_from)  # fmt: skip
    request.store(project)
    return result


def report_card(
    project: Project,
    request: EvaluateRequest | None = None,
    *,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    **values: Any,
) -> ReportCard:
    """The run's knowledge report card (base and tuned, without and with passages, graded by the judge), saved in
    its eval.json (see ftstudio.train.card)."""
    from ftstudio.train.card import evaluate_run

    request = request_of(EvaluateRequest, request, values)
    card = evaluate_run(project, request.run, eval_settings=request.resolve(project),
                        progress=watched(progress, cancel))  # fmt: skip
    request.store(project)
    return card


def export(
    project: Project,
    request: ExportRequest | None = None,
    *,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    **values: Any,
) -> ExportResult:
    """Export a run as an adapter, a merged model or a GGUF with its Modelfile (see ftstudio.export.exporter)."""
    from ftstudio.export.exporter import export as run

    request = request_of(ExportRequest, request, values)
    result = run(project, run_id=request.run, to_ollama=request.to_ollama, settings=request.resolve(project),
                 progress=watched(progress, cancel))  # fmt: skip
    request.store(project)
    return result


def chat(
    project: Project,
    request: ChatRequest | None = None,
    *,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    **values: Any,
) -> ChatResult:
    """Ask the tuned model (a run's adapter on its base model); each piece of the answer is reported as a
    "chat" event (the base model's, with compare, as "chat-base") as it is written."""
    from ftstudio.train.chat import load_chat, with_passages

    request = request_of(ChatRequest, request, values)
    model = load_chat(project, request.run)
    prompt, sources = with_passages(project, request.prompt, request.passages)
    progress = watched(progress, cancel)

    def answer(stage: str) -> str:
        pieces = []
        for piece in model.stream(prompt, max_new_tokens=request.max_new_tokens):
            pieces.append(piece)
            report(progress, stage, len(pieces), None, piece)
        return "".join(pieces).strip()

    tuned = answer("chat")
    base = None
    if request.compare:
        with model.model.disable_adapter():
            base = answer("chat-base")
    return ChatResult(model.run.id, tuned, base, tuple(sources))


# -- the data file ---------------------------------------------------------------------------------------------------


def import_data(
    project: Project, path: str | Path, mode: Literal["append", "replace"], *, name: str | None = None
) -> DataImportResult:
    """Add a ShareGPT/OpenAI/Alpaca JSONL (or JSON array) file to the project's data, canonicalised, each line
    recording `meta.imported_from` (`name`, else the file's name). `mode` has no default: replacing is a choice.
    "append" adds the good lines and lists the bad ones; "replace" puts the file in place of the data after a backup
    copy, and is refused (nothing changed) when the file has a bad line or no example. See ftstudio.synth.datafile."""
    from ftstudio.synth.datafile import import_file

    found = import_file(project, Path(path), mode, name=name)
    return DataImportResult(**{**found, "bad_lines": tuple(found["bad_lines"])})


def edit_data(project: Project, line: int, *, question: str, answer: str) -> DataEditResult:
    """Replace the question and answer of one data line (1-based), keeping its form, other turns and provenance;
    the line counts as accepted and records `meta.edited`. See ftstudio.synth.review."""
    from ftstudio.synth.review import edit

    return DataEditResult(line, edit(project, line, question, answer), str(project.sft_data))


def review_data(
    project: Project, lines: Sequence[int] | str, decision: Literal["accepted", "rejected", "pending"]
) -> DataReviewResult:
    """Mark data lines (1-based numbers, or a spec like "3,5-7") accepted, rejected (never trained on) or pending
    again; every other byte of the file is kept. See ftstudio.synth.review."""
    from ftstudio.dataset import read_dataset
    from ftstudio.synth import review

    numbers = review.parse_lines(lines) if isinstance(lines, str) else list(lines)
    changed = review.decide(project, numbers, decision)
    return DataReviewResult(changed, review.counts(read_dataset(project.sft_data).examples))


def delete_data(project: Project, lines: Sequence[int] | str) -> DataDeleteResult:
    """Delete data lines (1-based numbers, or a spec like "3,5-7"); every other line is kept byte for byte."""
    from ftstudio.synth.datafile import delete_lines

    found = delete_lines(project, lines)
    return DataDeleteResult(found["deleted"], tuple(found["lines"]), found["data"])
