"""The judge: the helper grades a candidate answer, seeing the source passage, the question and the reference.

Each verdict is structured (`correct`, `partly` or `wrong`, with a one-line reason) and asked for with temperature 0
and a fixed seed. Verdicts are cached in `projects/<name>/judge_cache.db` by a hash of everything the judge sees
(judge model, prompt template, passage, question, reference, candidate), so grading the same answers again asks
nothing. Requests are retried like generation's; the spend is counted and capped (`eval.max_cost`). A judge that
cannot be reached raises Unavailable; the report card turns that into a warning, never into zeros.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftstudio.errors import Unavailable
from ftstudio.progress import ProgressFn, report
from ftstudio.project import Project
from ftstudio.settings import EvalSettings
from ftstudio.synth import prompts
from ftstudio.synth.calls import Sampling, Usage, ask, preflight
from ftstudio.synth.parsing import extract_json
from ftstudio.synth.providers import Provider, ProviderError, create
from ftstudio.synth.settings import SynthSettings
from ftstudio.synth.state import now

VERDICTS = ("correct", "partly", "wrong")
VERDICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"verdict": {"type": "string", "enum": list(VERDICTS)}, "reason": {"type": "string"}},
    "required": ["verdict", "reason"],
    "additionalProperties": False,
}
CACHE_FILE = "judge_cache.db"
FATAL_STREAK = 3


@dataclass(frozen=True)
class GradeRequest:
    passage: str
    question: str
    reference: str
    candidate: str


@dataclass(frozen=True)
class Verdict:
    verdict: str
    reason: str
    cached: bool = False


@dataclass(frozen=True)
class GradeResult:
    """One verdict per request, in order (None: not graded: the cost cap was reached or the request failed)."""

    verdicts: tuple[Verdict | None, ...]
    judge: str
    asked: int
    cached: int
    failed: int
    usage: dict[str, Any]
    warnings: tuple[str, ...]


class VerdictCache:
    """Verdicts by content hash, in SQLite (one writer: the grading loop)."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(path)
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS verdicts (key TEXT PRIMARY KEY, verdict TEXT NOT NULL, reason TEXT NOT NULL, "
            "judge TEXT NOT NULL, created_at TEXT NOT NULL)"
        )

    @staticmethod
    def key(judge: str, template: str, request: GradeRequest) -> str:
        parts = [judge, template, request.passage, request.question, request.reference, request.candidate]
        return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode("utf-8")).hexdigest()

    def get(self, key: str) -> Verdict | None:
        row = self.conn.execute("SELECT verdict, reason FROM verdicts WHERE key = ?", (key,)).fetchone()
        return Verdict(row[0], row[1], cached=True) if row else None

    def put(self, key: str, judge: str, verdict: Verdict) -> None:
        with self.conn:
            self.conn.execute(
                "INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?, ?, ?)",
                (key, verdict.verdict, verdict.reason, judge, now()),
            )

    def close(self) -> None:
        self.conn.close()


def read_verdict(text: str) -> Verdict | None:
    """The verdict in a judge's reply, or None when it holds none of the three."""
    try:
        data = extract_json(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    verdict = str(data.get("verdict", "")).strip().lower()
    if verdict not in VERDICTS:
        return None
    return Verdict(verdict, " ".join(str(data.get("reason") or "").split())[:300])


def grade(
    project: Project,
    settings: SynthSettings,
    eval_settings: EvalSettings,
    requests: list[GradeRequest],
    *,
    judge_model: str | None = None,
    api_key: str | None = None,
    provider: Provider | None = None,
    progress: ProgressFn | None = None,
) -> GradeResult:
    """Grade every request with the judge (the synth helper's provider, `judge_model` or eval.judge_model or the
    helper model). Raises Unavailable when the judge cannot be reached or keeps failing."""
    model = judge_model or eval_settings.judge_model or settings.model
    if not model:
        raise Unavailable(
            "no judge model: the project has no helper model set",
            hint="pass --judge-model M, or set synth.model / eval.judge_model (see `ftstudio helpers`)",
        )
    helper = provider or create(
        settings.provider, base_url=settings.base_url, api_key=api_key,
        concurrency=settings.concurrency or 16, timeout=settings.timeout_s, root=project.root,
        num_ctx=settings.num_ctx, progress=progress,
    )  # fmt: skip
    judge = f"{helper.name}:{model}"
    template = prompts.load_template(project.dir, "grade")
    # Deterministic: temperature 0 and a fixed seed, so the same answers get the same verdicts.
    sampling = Sampling(
        model, 0.0, eval_settings.seed, 256, settings.num_ctx, settings.timeout_s, settings.max_attempts
    )
    cache = VerdictCache(project.dir / CACHE_FILE)
    usage, rng = Usage(), random.Random(eval_settings.seed)
    verdicts: list[Verdict | None] = [None] * len(requests)
    warnings: list[str] = []
    state = {"asked": 0, "failed": 0, "streak": 0, "done": 0, "inflight": 0, "capped": False, "fatal": None}
    concurrency = helper.concurrency_for(settings.concurrency)

    async def main() -> None:
        try:
            todo = []
            for i, request in enumerate(requests):
                if not request.candidate.strip():
                    verdicts[i] = Verdict("wrong", "no answer")
                    continue
                key = VerdictCache.key(judge, template.template, request)
                verdicts[i] = cache.get(key)
                if verdicts[i] is None:
                    todo.append((i, key, request))
            if not todo:
                return
            bound = await preflight(helper, model, sampling.max_tokens)
            gate = asyncio.Semaphore(concurrency)

            async def one(i: int, key: str, request: GradeRequest) -> None:
                async with gate:
                    if state["fatal"] is not None:
                        return
                    per_request = bound if bound is not None else usage.cost / max(1, usage.requests) * 2
                    # What is spent plus a bound for every request in flight and this one, as generation counts.
                    if eval_settings.max_cost is not None and (
                        usage.cost + (state["inflight"] + 1) * per_request > eval_settings.max_cost
                    ):
                        state["capped"] = True
                        return
                    content = template.substitute(
                        passage=request.passage or "(no passage: judge by the reference)", question=request.question,
                        reference=request.reference, candidate=request.candidate,
                    )  # fmt: skip
                    state["asked"] += 1
                    state["inflight"] += 1
                    try:
                        reply = await ask(helper, sampling, content, VERDICT_SCHEMA, usage, rng)
                    except ProviderError as exc:
                        state["failed"] += 1
                        state["streak"] += 1
                        if (not exc.retryable and exc.kind != "bad_request") or state["streak"] >= FATAL_STREAK:
                            state["fatal"] = exc
                        return
                    finally:
                        state["inflight"] -= 1
                    state["streak"] = 0
                    verdict = read_verdict(reply.text)
                    if verdict is None:
                        state["failed"] += 1
                        return
                    cache.put(key, judge, verdict)
                    verdicts[i] = verdict
                    state["done"] += 1
                    report(progress, "judge", state["done"], len(todo), f"{verdict.verdict}: {request.question[:50]}")

            await asyncio.gather(*(one(*t) for t in todo))
        finally:
            if provider is None:
                await helper.aclose()

    try:
        asyncio.run(main())
    finally:
        cache.close()
    fatal = state["fatal"]
    if fatal is not None:
        raise Unavailable(f"the judge {judge} failed: {fatal.message}", hint=fatal.hint or "check the judge's server")
    if state["capped"]:
        warnings.append(f"the judge stopped at the cost cap (eval.max_cost ${eval_settings.max_cost:g})")
    if state["failed"]:
        warnings.append(f"{state['failed']} verdict(s) could not be had (failed or unreadable replies)")
    cached = sum(1 for v in verdicts if v is not None and v.cached)
    return GradeResult(tuple(verdicts), judge, state["asked"], cached, state["failed"], usage.to_dict(),
                       tuple(warnings))  # fmt: skip
