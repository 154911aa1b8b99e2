"""Generation: a helper model writes question-answer pairs, grounded in the knowledge store, into sft_data.jsonl.

`generate(project, settings, pairs=N, ...)` writes exactly N pairs (or stops for a stated reason), running
`settings.concurrency` requests at once. Each request carries one chunk (drawn so the whole store is covered before
any chunk is reused) or, in topic-only mode, just the topic; its reply is parsed, filtered (length, grounding,
optional judge, near-duplicates) and appended whole-line to the file. Rate limits, 5xx and timeouts are retried with
exponential back-off and jitter honouring Retry-After; a missing server, key or model stops the run with
`Unavailable`. State lives in the project (see state.py), so the next call resumes an interrupted run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import math
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ftstudio.dataset import LineError, append_records, iter_lines, repair_torn_tail
from ftstudio.errors import BadInput, Cancelled, NotFound, Unavailable
from ftstudio.progress import ProgressFn, report
from ftstudio.project import Project
from ftstudio.synth import evalset, mix, prompts
from ftstudio.synth.calls import Sampling, ask, preflight
from ftstudio.synth.parsing import Pair, extract_json, pairs_schema, parse_pairs
from ftstudio.synth.providers import Provider, ProviderError, create
from ftstudio.synth.quality import DuplicateIndex, content_terms, grounding_score, length_problem
from ftstudio.synth.settings import SynthSettings
from ftstudio.synth.sources import ChunkSource, SourceChunk, open_source
from ftstudio.synth.state import STATE_FILE, RunRecord, RunState, Task, now, run_summary

FATAL_STREAK = 3  # this many requests in a row failing the same way (after their retries) stop the run
# Finished pairs are appended at most this often (one fsync and one SQLite commit per batch); pairs not yet
# appended at a crash are not lost: their tasks are still pending and are sent again on resume.
FLUSH_INTERVAL_S = 0.25
ASSIGN_BLOCK = 32  # tasks recorded ahead in one SQLite transaction
GC_THRESHOLD = 20_000  # the collector's first threshold while a run's loop turns (see _fewer_collections)
EMIT_INTERVAL_S = 0.1  # progress events at most this often (and always the last one)
STALE_MIN = 20  # replies in a row with no new pair (all dropped) before a run is called exhausted
JUDGE_SCHEMA = {
    "type": "object",
    "properties": {"supported": {"type": "boolean"}},
    "required": ["supported"],
    "additionalProperties": False,
}


@dataclass
class _Outcome:
    task: Task
    pairs: list[Pair] = field(default_factory=list)
    chunks: list[SourceChunk] = field(default_factory=list)
    dropped: Counter = field(default_factory=Counter)
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    requests: int = 0
    retries: int = 0
    error: ProviderError | None = None


class _Generator:
    def __init__(
        self,
        project: Project,
        settings: SynthSettings,
        provider: Provider,
        state: RunState,
        run: RunRecord,
        source: ChunkSource | None,
        *,
        max_cost: float | None,
        progress: ProgressFn | None,
        cancel: threading.Event | None,
    ):
        self.project, self.settings, self.provider, self.state, self.run = project, settings, provider, state, run
        self.source, self.max_cost, self.progress, self.cancel = source, max_cost, progress, cancel
        self.helper = f"{provider.name}:{settings.model}"
        self.sampling = Sampling(
            settings.model or "", settings.temperature, settings.seed, settings.max_tokens, settings.num_ctx,
            settings.timeout_s, settings.max_attempts,
        )  # fmt: skip
        self.rng = random.Random()
        self.dupes = DuplicateIndex(settings.duplicate_threshold)
        self.held_out: set[int] = set()
        self.all_ids: list[int] | None = None
        kind = "generate" if run.mode == "grounded" else "topic"
        self.template = prompts.load_template(project.dir, kind)
        # What every request of the run shares, built once: the settings' placeholders, the schema, and in
        # topic-only mode the whole prompt.
        s = settings
        self.prompt_common = {"k": s.pairs_per_chunk, "audience": s.audience, "style": s.style, **mix.prompt_parts(s)}
        self.topic_prompt = (
            self.template.substitute(self.prompt_common, topic=run.topic or "") if run.mode == "topic" else ""
        )
        self.schema = pairs_schema(s.paraphrases, s.followups)
        self.judge_template = prompts.load_template(project.dir, "judge") if settings.judge else None
        self.price_bound: float | None = None  # upper bound of one request's cost, when prices are known
        self.max_seen_cost = 0.0
        self.streak: tuple[str | None, int] = (None, 0)
        self.fatal: ProviderError | None = None
        self.last_emit = float("-inf")

    # -- the file is the truth ----------------------------------------------------------------------------------
    def load_existing(self, eval_questions: list[str]) -> None:
        """Index the questions already in the file and the eval set's (never to be trained on), and count this
        run's pairs in the file (repairing a torn tail)."""
        path = self.project.sft_data
        repair_torn_tail(path)
        for question in eval_questions:
            self.dupes.add_if_new(question)
        per_task: Counter = Counter()
        if path.exists():
            for _, item in iter_lines(path):
                if isinstance(item, LineError):
                    continue
                self.dupes.add_if_new(item.prompt)
                plain = mix.is_plain(item.meta)
                if plain and item.meta.get("run") == self.run.id and isinstance(item.meta.get("task"), int):
                    per_task[item.meta["task"]] += 1
        self.run.written = sum(per_task.values())
        self.state.reconcile(self.run.id, dict(per_task))

    # -- one request ----------------------------------------------------------------------------------------------
    def prompt_for(self, chunks: list[SourceChunk]) -> str:
        if self.run.mode == "grounded":
            c = chunks[0]
            return self.template.substitute(
                self.prompt_common, chunk=c.text, document=c.document, location=c.location or "-"
            )
        return self.topic_prompt

    async def work(self, task: Task) -> _Outcome:
        out = _Outcome(task)
        try:
            try:
                out.chunks = self.source.get(task.chunk_ids) if self.source and task.chunk_ids else []
            except NotFound:
                # The document changed since this task was assigned (re-ingested): its chunk is gone.
                out.dropped["chunk_gone"] += 1
                return out
            # One chat with retries; `ask` counts requests, retries, tokens and cost into `out`.
            reply = await ask(self.provider, self.sampling, self.prompt_for(out.chunks), self.schema, out, self.rng)
            try:
                pairs = parse_pairs(reply.text)
            except ValueError:
                out.dropped["unparseable_reply"] += 1
                return out
            source_terms = {t for c in out.chunks for t in content_terms(c.text)}
            for pair in pairs:
                reason = self.check(pair, source_terms)
                if reason is None and self.judge_template and out.chunks:
                    reason = await self.judge(out, pair)
                if reason:
                    out.dropped[reason] += 1
                    continue
                if pair.followup is not None and self.check(pair.followup, source_terms):
                    out.dropped["followup_dropped"] += 1
                    pair = dataclasses.replace(pair, followup=None)
                out.pairs.append(pair)
        except ProviderError as exc:
            out.error = exc
        return out

    def check(self, pair: Pair, source_terms: set[str]) -> str | None:
        s = self.settings
        reason = length_problem(
            pair.question, pair.answer, min_q=s.min_question_chars, min_a=s.min_answer_chars, max_a=s.max_answer_chars
        )
        if reason:
            return reason
        threshold = s.grounding_threshold
        if source_terms and threshold > 0 and grounding_score(pair.answer, source_terms) < threshold:
            return "ungrounded"
        return None

    async def judge(self, out: _Outcome, pair: Pair) -> str | None:
        assert self.judge_template is not None
        content = self.judge_template.substitute(
            chunk="\n\n".join(c.text for c in out.chunks), question=pair.question, answer=pair.answer
        )
        reply = await ask(self.provider, self.sampling, content, JUDGE_SCHEMA, out, self.rng)
        try:
            verdict = extract_json(reply.text)
        except ValueError:
            return "judge_unreadable"
        return None if isinstance(verdict, dict) and verdict.get("supported") is True else "judge_rejected"

    # -- the loop -------------------------------------------------------------------------------------------------
    def request_cost_bound(self) -> float:
        if self.price_bound is not None:
            return self.price_bound
        return self.max_seen_cost * 2

    def records_for(self, out: _Outcome, pairs: list[Pair]) -> list[dict[str, Any]]:
        meta_common: dict[str, Any] = {
            "chunk_ids": list(out.task.chunk_ids),
            "document": out.chunks[0].document if out.chunks else None,
            "helper": self.helper,
            "created_at": now(),
            "run": self.run.id,
            "task": out.task.id,
        }
        if self.run.mode == "topic":
            meta_common["topic"] = self.run.topic
        records = []
        for p in pairs:
            records.append({"instruction": p.question, "output": p.answer, "meta": dict(meta_common)})
            records += mix.variants(p, meta_common, self.settings, self.passages_for(p, out.chunks))
        return records

    def passages_for(self, pair: Pair, chunks: list[SourceChunk]) -> list[tuple[int, str]] | None:
        """The source chunk and distractors (the store's best other matches for the question, then random chunks;
        held-out chunks never) for a "with passages" line, or None when this pair gets none."""
        s = self.settings
        if not chunks or self.source is None or not mix.chosen_for_passages(pair.question, s.passages_share):
            return None
        skip = {c.id for c in chunks} | self.held_out
        others = [c for c in self.source.search(pair.question, s.distractors + len(skip)) if c.id not in skip]
        if len(others) < s.distractors:  # the search found too few: chunks drawn at random (stable per question)
            if self.all_ids is None:
                self.all_ids = self.source.ids(None)
            seen = skip | {c.id for c in others}
            pool = [i for i in self.all_ids if i not in seen]
            drawn = random.Random(pair.question).sample(pool, min(len(pool), s.distractors - len(others)))
            others += self.source.get(tuple(drawn))
        return [(chunks[0].id, chunks[0].text)] + [(c.id, c.text) for c in others[: s.distractors]]

    def note_failure(self, error: ProviderError) -> None:
        kind, count = self.streak
        self.streak = (error.kind, count + 1 if kind == error.kind else 1)
        if (not error.retryable and error.kind != "bad_request") or self.streak[1] >= FATAL_STREAK:
            self.fatal = self.fatal or error

    def emit(self, accepted: int, final: bool = False) -> None:
        if self.progress is None:
            return
        clock = time.monotonic()
        if not final and clock - self.last_emit < EMIT_INTERVAL_S:
            return  # the loop turns about once per reply: one event per interval is plenty for a progress bar
        self.last_emit = clock
        r = self.run
        dropped = sum(r.dropped.values())
        cost = f" · ${r.cost_usd:.4f}" if r.cost_usd else ""
        report(
            self.progress,
            "generate",
            accepted,
            r.target,
            f"{dropped} dropped · {r.failures} failed · {r.tokens_in + r.tokens_out} tok{cost}",
            written=accepted,
            dropped=dict(r.dropped),
            failures=r.failures,
            requests=r.requests,
            retries=r.retries,
            tokens_in=r.tokens_in,
            tokens_out=r.tokens_out,
            cost_usd=r.cost_usd,
        )

    async def run_loop(self) -> None:
        s, run = self.settings, self.run
        concurrency = self.provider.concurrency_for(s.concurrency)
        queue = deque(self.state.pending_tasks(run.id))  # assigned by an earlier session, never finished
        inflight: dict[asyncio.Future, Task] = {}
        # Finished requests arrive here (cheaper than asyncio.wait over every in-flight future each time).
        results: asyncio.Queue[asyncio.Future | None] = asyncio.Queue()
        buffer: list[dict[str, Any]] = []
        finished: list[tuple[int, int]] = []
        writer: asyncio.Task | None = None
        accepted = run.written
        kept_total, done_requests, stale = 0, 0, 0
        last_flush = time.monotonic()
        stale_limit = max(STALE_MIN, 2 * concurrency, min(self.state.candidate_count, 200))

        async def flush(records: list[dict[str, Any]], tasks: list[tuple[int, int]]) -> None:
            # The lines reach the file (fsynced) before their tasks are marked done: a crash in between is
            # reconciled from the file on resume.
            if records:
                await asyncio.to_thread(append_records, self.project.sft_data, records)
            run.written += sum(mix.is_plain(r["meta"]) for r in records)
            self.state.finish_tasks(tasks, run)

        def stopping() -> bool:
            if self.cancel is not None and self.cancel.is_set() and run.stop_reason is None:
                run.stop_reason = "cancelled"
            return run.stop_reason is not None or self.fatal is not None

        def pairs_per_request() -> float:
            return max(0.25, kept_total / done_requests) if done_requests else s.pairs_per_chunk

        def how_many_to_send() -> int:
            yield_est = pairs_per_request()
            n = 0
            while len(inflight) + n < concurrency and not stopping():
                busy = len(inflight) + n
                if accepted + busy * yield_est >= run.target:
                    break
                if self.max_cost is not None:
                    bound = self.request_cost_bound()
                    if run.cost_usd + (busy + 1) * bound > self.max_cost:
                        if not busy:
                            run.stop_reason = "max_cost"
                        break
                    if bound == 0 and self.price_bound is None and done_requests == 0 and busy:
                        break  # price unknown: learn it from one reply before sending more
                n += 1
            return n

        async def watch_cancel(event: threading.Event) -> None:
            while not event.is_set():
                await asyncio.sleep(0.1)
            results.put_nowait(None)  # wakes the loop, which then sees stopping()

        watcher = asyncio.ensure_future(watch_cancel(self.cancel)) if self.cancel is not None else None
        self.emit(accepted)
        while True:
            n = how_many_to_send()
            if n:
                if len(queue) < n:
                    # Tasks are recorded a block ahead (one transaction per block, not per loop turn), as many as
                    # the run still seems to need; those never sent are released when the run is done.
                    needed = math.ceil((run.target - accepted) / pairs_per_request()) - len(inflight) - len(queue)
                    block = max(n - len(queue), min(ASSIGN_BLOCK, needed))
                    queue.extend(self.state.assign_many(run.id, block, with_chunk=self.source is not None))
                tasks = [queue.popleft() for _ in range(n)]
                for task in tasks:
                    fut = asyncio.ensure_future(self.work(task))
                    fut.add_done_callback(results.put_nowait)
                    inflight[fut] = task
            if writer is not None and writer.done():
                writer.result()
                writer = None
            due = not inflight or time.monotonic() - last_flush >= FLUSH_INTERVAL_S or accepted >= run.target
            if writer is None and (buffer or finished) and due:
                writer = asyncio.ensure_future(flush(buffer, finished))
                buffer, finished = [], []
                last_flush = time.monotonic()
            if not inflight:
                if writer is not None:
                    await writer
                    writer = None
                    continue
                if accepted >= run.target or stopping():
                    break
                continue
            if stopping() and (run.stop_reason == "cancelled" or self.fatal is not None):
                for t in inflight:
                    t.cancel()  # their tasks stay pending and are sent again on resume
                await asyncio.gather(*inflight, return_exceptions=True)
                inflight.clear()
                continue
            done = [await results.get()]  # the cancel watcher wakes this up too
            while not results.empty():
                done.append(results.get_nowait())
            for fut in done:
                if fut is None or inflight.pop(fut, None) is None or fut.cancelled():
                    continue
                out: _Outcome = fut.result()
                run.requests += out.requests
                run.retries += out.retries
                run.tokens_in += out.tokens_in
                run.tokens_out += out.tokens_out
                run.cost_usd += out.cost
                self.max_seen_cost = max(self.max_seen_cost, out.cost)
                if out.error is not None:
                    run.failures += 1
                    self.note_failure(out.error)
                    queue.append(out.task)  # same chunk, later (still pending, so a resume would send it too)
                    continue
                self.streak = (None, 0)
                done_requests += 1
                keep: list[Pair] = []
                for pair in out.pairs:
                    if accepted + len(keep) >= run.target:
                        break  # exactly N: surplus pairs of the last replies are not written
                    if self.dupes.add_if_new(pair.question):
                        fresh = tuple(q for q in pair.paraphrases if self.dupes.add_if_new(q))
                        keep.append(pair if fresh == pair.paraphrases else dataclasses.replace(pair, paraphrases=fresh))
                    else:
                        out.dropped["duplicate"] += 1
                for reason, n in out.dropped.items():
                    run.dropped[reason] = run.dropped.get(reason, 0) + n
                kept_total += len(keep)
                accepted += len(keep)
                stale = 0 if keep else stale + 1
                if stale >= stale_limit and run.stop_reason is None:
                    # The helper keeps repeating itself or failing the filters: more requests only cost more.
                    run.stop_reason = "exhausted"
                buffer.extend(self.records_for(out, keep))
                finished.append((out.task.id, len(keep)))
            self.emit(accepted)
        if watcher is not None:
            watcher.cancel()
        if run.written >= run.target and queue:
            self.state.release(list(queue))  # recorded ahead, never sent: their chunks are free again
        self.emit(run.written, final=True)


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """Run the loop with the cyclic garbage collector's first threshold raised (restored after).

    Each request allocates a few hundred short-lived objects (futures, aiohttp's request and response, parsed JSON),
    nearly all freed at once by reference counting; at the default threshold (700) the collector still ran some 75
    times per 1,000 requests, about a tenth of the client's CPU at 64 requests in flight. With 20,000 it runs a few
    times per run, and cycles are still collected."""
    old = gc.get_threshold()
    gc.set_threshold(max(old[0], GC_THRESHOLD), *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)


def _resolve_run(
    state: RunState, pairs: int | None, mode: str, topic: str | None, settings: SynthSettings, fresh: bool
) -> RunRecord:
    existing = state.unfinished_run()
    if existing and fresh:
        state.abandon(existing.id)
        existing = None
    mismatch = existing is not None and (existing.mode, existing.topic or None) != (mode, topic or None)
    if mismatch and existing.written == 0 and not state.pending_tasks(existing.id):
        state.abandon(existing.id)  # it never got going (e.g. the server was down): nothing to keep
        existing = None
    if existing:
        if (existing.mode, existing.topic or None) != (mode, topic or None):
            raise BadInput(
                f"run {existing.id} is unfinished ({existing.written} of {existing.target} pairs, "
                f"mode {existing.mode}, topic {existing.topic!r}); this call asks for mode {mode}, topic {topic!r}",
                hint="repeat the run's own options to finish it, or pass --fresh to close it and start anew",
            )
        if pairs is not None:
            existing.target = max(pairs, existing.written)
            state.conn.execute("UPDATE runs SET target = ? WHERE id = ?", (existing.target, existing.id))
        existing.provider, existing.model, existing.base_url = settings.provider, settings.model, settings.base_url
        existing.status, existing.stop_reason = "running", None
        return existing
    return state.new_run(pairs or 100, mode, topic, settings.provider, settings.model or "", settings.base_url)


def generate(
    project: Project,
    settings: SynthSettings,
    pairs: int | None = None,
    *,
    topic: str | None = None,
    topic_only: bool = False,
    max_cost: float | None = None,
    api_key: str | None = None,
    fresh: bool = False,
    provider: Provider | None = None,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    on_ready: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Generate pairs into `project.sft_data` until the run has `pairs` (resuming an unfinished run first).

    `on_ready` is called once the checks have passed (the helper answered), before the first pair is asked for:
    the CLI saves the run's settings there, so a refused run saves nothing and a killed one can be resumed.

    Returns the run's summary (`written`, `dropped` by reason, `requests`, `retries`, `tokens`, `cost_usd`,
    `status`, `stop_reason`). Raises BadInput (no model, nothing to ground on and no topic), Unavailable (server,
    key or model missing, or repeated failures of one kind; the run is kept for resuming). A run stopped by
    `cancel` or `max_cost` returns with status "stopped" and its reason.
    """
    if not settings.model:
        raise BadInput("no helper model chosen", hint="pass --model (see `ftstudio helpers`) or set synth.model")
    if pairs is not None and pairs < 1:
        raise BadInput(f"--pairs must be at least 1, got {pairs}", hint="ask for the number of pairs to write")
    started = time.monotonic()
    with open_source(project.knowledge_db) as source:
        if topic_only:
            source = None
        if source is None and not topic:
            raise BadInput(
                f"project {project.name!r} has no documents in its knowledge store and no topic was given",
                hint=f"ingest documents first (`ftstudio ingest {project.name} PATH`) or pass --topic "
                '"Generate 5th-grade math questions and answers"',
            )
        mode = "grounded" if source is not None else "topic"
        prompts.ensure_templates(project.dir)
        with RunState.open(project.dir / STATE_FILE) as state:
            frozen = evalset.load(project)
            candidates = source.ids(topic) if source is not None else []  # BadInput before any run is recorded
            if frozen is not None and candidates:
                candidates = [c for c in candidates if c not in frozen.held_out]
                if not candidates:
                    raise BadInput(
                        "every chunk to draw from is held out for the eval set (data/eval_set.jsonl)",
                        hint="ingest more documents, widen --topic, or make the eval set again with a lower "
                        "eval.held_out_share",
                    )
            run = _resolve_run(state, pairs, mode, topic, settings, fresh)
            if source is not None:
                state.load_candidates(candidates, settings.seed)  # a set seed: the same chunks, in order
            helper = provider or create(
                settings.provider,
                base_url=settings.base_url,
                api_key=api_key,
                concurrency=settings.concurrency or 64,
                timeout=settings.timeout_s,
                root=project.root,
                num_ctx=settings.num_ctx,
                progress=progress,
            )
            gen = _Generator(
                project, settings, helper, state, run, source, max_cost=max_cost, progress=progress, cancel=cancel
            )
            gen.held_out = set(frozen.held_out) if frozen else set()
            gen.load_existing([item.question for item in frozen.items] if frozen else [])

            async def main() -> None:
                try:
                    if run.written < run.target:
                        gen.price_bound = await preflight(helper, settings.model or "", settings.max_tokens)
                        if on_ready is not None:
                            on_ready()
                        await gen.run_loop()
                finally:
                    if provider is None:
                        await helper.aclose()

            try:
                with _fewer_collections():
                    asyncio.run(main())
            except Unavailable:
                run.status, run.stop_reason = "failed", "unavailable"
                state.save_run(run)
                raise
            except (KeyboardInterrupt, Cancelled):
                run.status, run.stop_reason = "stopped", "cancelled"
                state.save_run(run)
                raise
            if gen.fatal is not None:
                run.status, run.stop_reason = "failed", gen.fatal.kind
                state.save_run(run)
                raise Unavailable(
                    f"{gen.fatal.message} — stopped after {run.written} of {run.target} pairs "
                    f"({run.failures} failed requests)",
                    hint=(gen.fatal.hint or "fix the cause") + f"; `ftstudio generate {project.name}` then resumes",
                )
            run.status = "done" if run.written >= run.target else "stopped"
            state.save_run(run)
    summary = run_summary(run)
    summary["structured_output"] = helper.structured_form or "prompt-only"
    summary["concurrency"] = helper.concurrency_for(settings.concurrency)
    summary["seconds"] = round(time.monotonic() - started, 3)
    summary["data"] = str(project.sft_data)
    return summary
