"""The evaluation set, `data/eval_set.jsonl`: questions made before training, frozen, never trained on.

Three kinds of question, so the report card can tell recall from memorised wording:
- `held_out`: from chunks the training data has not used; generation never draws them afterwards;
- `seen`: new questions from chunks the training data draws on (all chunks not held out, when there is none yet);
- `paraphrase`: a training question in new words ("same fact, new words"), with the training answer as reference.
No eval question is a (near-)duplicate of a training question, and generation drops any pair whose question is
one of them. Each line keeps its source passage, so grading stays the same if the store changes; the file's
content hash is the set's version, recorded in every report card so runs are compared on the same questions.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any

from ftstudio.dataset import LineError, iter_lines
from ftstudio.errors import BadInput, Unavailable
from ftstudio.fsutil import atomic_write_text
from ftstudio.progress import ProgressFn, report
from ftstudio.project import Project
from ftstudio.settings import EvalSettings
from ftstudio.synth import mix, prompts
from ftstudio.synth.calls import Sampling, Usage, ask, preflight
from ftstudio.synth.parsing import PAIRS_SCHEMA, extract_json, parse_pairs
from ftstudio.synth.providers import Provider, ProviderError, create
from ftstudio.synth.quality import DuplicateIndex, content_terms, grounding_score, length_problem, words
from ftstudio.synth.settings import SynthSettings
from ftstudio.synth.sources import ChunkSource, SourceChunk, open_source
from ftstudio.synth.state import now

KINDS = ("held_out", "seen", "paraphrase")
PARAPHRASE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"paraphrase": {"type": "string"}},
    "required": ["paraphrase"],
    "additionalProperties": False,
}
FATAL_STREAK = 3


@dataclass(frozen=True)
class EvalItem:
    """One frozen question with its reference answer and the passage it was written from."""

    id: str
    kind: str
    question: str
    reference: str
    passage: str
    chunk_ids: tuple[int, ...] = ()
    document: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "kind": self.kind, "question": self.question, "reference": self.reference,
            "passage": self.passage, "chunk_ids": list(self.chunk_ids), "document": self.document, "meta": self.meta,
        }  # fmt: skip


@dataclass(frozen=True)
class EvalSet:
    """The project's eval set as read from the file; `version` is its content hash."""

    items: tuple[EvalItem, ...]
    version: str

    @property
    def held_out(self) -> frozenset[int]:
        """Chunks reserved for held-out questions: generation never draws them."""
        return frozenset(c for item in self.items if item.kind == "held_out" for c in item.chunk_ids)

    def counts(self) -> dict[str, int]:
        return {kind: sum(item.kind == kind for item in self.items) for kind in KINDS}


@dataclass(frozen=True)
class EvalSetResult:
    """What `make_eval_set` wrote."""

    path: str
    version: str
    questions: int
    asked: int
    by_kind: dict[str, int]
    dropped: dict[str, int]
    usage: dict[str, Any]
    warnings: tuple[str, ...]
    seconds: float
    # The helper that wrote it: provider, model, base_url, and `from` (this run, project.toml, or the generation
    # run it was taken from).
    helper: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "warnings": list(self.warnings)}


def load(project: Project) -> EvalSet | None:
    """The project's eval set, or None when it has none; BadInput naming the line when one is unreadable."""
    path = project.eval_set
    if not path.is_file():
        return None
    raw = path.read_bytes()
    items = []
    for number, line in enumerate(raw.decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            item = EvalItem(
                str(obj["id"]), obj["kind"], obj["question"], obj["reference"], obj.get("passage") or "",
                tuple(int(c) for c in obj.get("chunk_ids") or ()), obj.get("document"), obj.get("meta") or {},
            )  # fmt: skip
            if item.kind not in KINDS or not item.question.strip() or not item.reference.strip():
                raise ValueError(f"kind must be one of {', '.join(KINDS)}; question and reference must be text")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BadInput(
                f"{path}: line {number} is not an eval question ({exc})",
                hint=f"fix the line, or make the set again with `ftstudio data {project.name} --make-eval N --fresh`",
            ) from None
        items.append(item)
    return EvalSet(tuple(items), hashlib.sha256(raw).hexdigest()[:12])


def questions_of(project: Project) -> set[str]:
    """The eval questions, normalised as training's near-duplicate check reads them (empty without a set)."""
    frozen = load(project)
    return {" ".join(words(item.question)) for item in frozen.items} if frozen else set()


def _training(project: Project) -> tuple[list[Any], set[int]]:
    """The training examples (bad lines skipped: `ftstudio data` reports them) and the chunks they were made from."""
    if not project.sft_data.is_file():
        return [], set()
    examples = [item for _, item in iter_lines(project.sft_data) if not isinstance(item, LineError)]
    used = {int(c) for e in examples for c in (e.meta.get("chunk_ids") or []) if isinstance(c, int)}
    return examples, used


class _Maker:
    def __init__(self, project, settings, eval_settings, provider, source, max_cost, progress, target):
        self.project, self.settings, self.eval, self.provider = project, settings, eval_settings, provider
        self.source: ChunkSource = source
        self.max_cost, self.progress, self.target = max_cost, progress, target
        self.sampling = Sampling(
            settings.model or "", 0.0, eval_settings.seed, settings.max_tokens, settings.num_ctx,
            settings.timeout_s, settings.max_attempts,
        )  # fmt: skip
        self.usage = Usage()
        self.rng = random.Random(eval_settings.seed)
        self.dupes = DuplicateIndex(settings.duplicate_threshold)
        self.items: list[EvalItem] = []
        self.dropped: dict[str, int] = {}
        self.warnings: list[str] = []
        self.asked = 0
        self.price_bound: float | None = None
        self.streak = 0
        self.concurrency = provider.concurrency_for(settings.concurrency)
        self.helper = f"{provider.name}:{settings.model}"
        self.templates = {k: prompts.load_template(project.dir, k) for k in ("evalset", "paraphrase")}

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1

    def over_budget(self, requests: int) -> bool:
        if self.max_cost is None:
            return False
        bound = self.price_bound if self.price_bound is not None else self.usage.cost / max(1, self.usage.requests) * 2
        return self.usage.cost + requests * bound > self.max_cost

    async def one(self, content: str, schema: dict[str, Any]) -> str | None:
        """The reply's text, or None after a failure that retrying did not fix; Unavailable when it cannot work."""
        try:
            reply = await ask(self.provider, self.sampling, content, schema, self.usage, self.rng)
        except ProviderError as exc:
            self.streak += 1
            if (not exc.retryable and exc.kind != "bad_request") or self.streak >= FATAL_STREAK:
                raise Unavailable(
                    f"making the eval set stopped: {exc.message}; nothing was written",
                    hint=exc.hint or "fix the helper's connection and run it again",
                ) from None
            self.drop("failed_request")
            return None
        self.streak = 0
        return reply.text

    def add(self, kind: str, question: str, reference: str, passage: str, chunks: tuple[int, ...],
            document: str | None, **meta: Any) -> bool:  # fmt: skip
        if not self.dupes.add_if_new(question):
            self.drop("in_training" if kind != "paraphrase" else "too_close_to_training")
            return False
        item_meta = {"helper": self.helper, "created_at": now(), **meta}
        self.items.append(
            EvalItem(f"e{len(self.items) + 1:04d}", kind, question, reference, passage, chunks, document, item_meta)
        )
        report(self.progress, "make-eval", len(self.items), self.target, f"{kind}: {question[:60]}")
        return True

    async def from_chunks(self, kind: str, pool: list[int], wanted: int) -> set[int]:
        """Ask for questions chunk by chunk (`concurrency` at once) until `wanted` are kept; the chunks used."""
        used: set[int] = set()
        kept = 0
        pool = list(pool)
        while kept < wanted and pool:
            batch = [pool.pop(0) for _ in range(min(self.concurrency, len(pool)))]
            if self.over_budget(len(batch)):
                self.warnings.append(f"stopped before the cost cap of ${self.max_cost:g}")
                break
            chunks = self.source.get(tuple(batch))
            k = min(self.eval.per_chunk, wanted - kept)
            contents = [
                self.templates["evalset"].substitute(k=k, chunk=c.text, document=c.document, location=c.location or "-")
                for c in chunks
            ]
            self.asked += len(contents)
            replies = await asyncio.gather(*(self.one(text, PAIRS_SCHEMA) for text in contents))
            for chunk, reply in zip(chunks, replies, strict=True):
                kept_here = self.keep_pairs(kind, chunk, reply, min(k, wanted - kept))
                if kept_here:
                    used.add(chunk.id)
                kept += kept_here
        return used

    def keep_pairs(self, kind: str, chunk: SourceChunk, reply: str | None, room: int) -> int:
        if reply is None:
            return 0
        try:
            pairs = parse_pairs(reply)
        except ValueError:
            self.drop("unparseable_reply")
            return 0
        s, terms, kept = self.settings, set(content_terms(chunk.text)), 0
        for pair in pairs:
            if kept >= room:
                break
            reason = length_problem(pair.question, pair.answer, min_q=s.min_question_chars, min_a=1,
                                    max_a=s.max_answer_chars)  # fmt: skip
            if reason is None and s.grounding_threshold and grounding_score(pair.answer, terms) < s.grounding_threshold:
                reason = "ungrounded"
            if reason:
                self.drop(reason)
            elif self.add(kind, pair.question, pair.answer, chunk.text, (chunk.id,), chunk.document):
                kept += 1
        return kept

    async def paraphrases(self, examples: list[Any], wanted: int) -> None:
        # Single-turn plain pairs not rejected in review: one fact each, as the user trains on it.
        sample = [e for e in examples if len(e.messages) <= 3 and mix.is_plain(e.meta)
                  and e.meta.get("review") != "rejected"]  # fmt: skip
        self.rng.shuffle(sample)
        kept = 0
        while kept < wanted and sample:
            batch = [sample.pop() for _ in range(min(self.concurrency, len(sample), wanted - kept))]
            if self.over_budget(len(batch)):
                self.warnings.append(f"stopped before the cost cap of ${self.max_cost:g}")
                return
            self.asked += len(batch)
            contents = [self.templates["paraphrase"].substitute(question=e.prompt) for e in batch]
            replies = await asyncio.gather(*(self.one(text, PARAPHRASE_SCHEMA) for text in contents))
            for example, reply in zip(batch, replies, strict=True):
                phrased = _paraphrase_text(reply)
                if not phrased or len(phrased) < self.settings.min_question_chars:
                    self.drop("unparseable_reply" if reply is not None else "failed_request")
                    continue
                chunks = tuple(int(c) for c in example.meta.get("chunk_ids") or () if isinstance(c, int))
                passage = "\n\n".join(c.text for c in self._chunks(chunks))
                if self.add("paraphrase", phrased, example.answer, passage, chunks, example.meta.get("document"),
                            paraphrase_of=example.prompt, source_line=example.line):  # fmt: skip
                    kept += 1

    def _chunks(self, ids: tuple[int, ...]) -> list[SourceChunk]:
        try:
            return self.source.get(ids) if ids else []
        except BadInput:  # NotFound: the document was re-ingested since; the judge then has the reference only
            return []


def _paraphrase_text(reply: str | None) -> str | None:
    if reply is None:
        return None
    try:
        data = extract_json(reply)
    except ValueError:
        return None
    value = data.get("paraphrase") if isinstance(data, dict) else None
    return value.strip() if isinstance(value, str) else None


def make_eval_set(
    project: Project,
    settings: SynthSettings,
    eval_settings: EvalSettings,
    questions: int,
    *,
    fresh: bool = False,
    max_cost: float | None = None,
    api_key: str | None = None,
    provider: Provider | None = None,
    progress: ProgressFn | None = None,
    helper_from: str = "this run",
) -> EvalSetResult:
    """Have the helper write `questions` eval questions into data/eval_set.jsonl (see the module docstring).

    Raises BadInput (a set exists and `fresh` is off, no helper model, no documents, a bad count), Unavailable
    (server, key or model missing, or repeated failures); in every such case the file is left as it was.
    """
    if questions < 1:
        raise BadInput(f"--make-eval must be at least 1, got {questions}", hint="ask for the number of questions")
    if not settings.model:
        raise BadInput("no helper model chosen", hint="pass --model (see `ftstudio helpers`) or set synth.model")
    existing = load(project)
    if existing is not None and not fresh:
        raise BadInput(
            f"{project.eval_set} exists (version {existing.version}, {len(existing.items)} questions) and is frozen, "
            "so every run is graded on the same questions",
            hint="keep it; or pass --fresh to replace it (report cards of earlier runs are then not comparable)",
        )
    started = time.monotonic()
    examples, used = _training(project)
    with open_source(project.knowledge_db) as source:
        if source is None:
            raise BadInput(
                f"project {project.name!r} has no documents in its knowledge store to write eval questions from",
                hint=f"ingest documents first (`ftstudio ingest {project.name} PATH`)",
            )
        all_ids = source.ids(None)
        n_para = round(questions * eval_settings.paraphrase_share) if examples else 0
        n_held = min(round(questions * eval_settings.held_out_share), questions - n_para)
        n_seen = questions - n_para - n_held
        rng = random.Random(eval_settings.seed)
        unused = [c for c in all_ids if c not in used]
        rng.shuffle(unused)
        helper = provider or create(
            settings.provider, base_url=settings.base_url, api_key=api_key,
            concurrency=settings.concurrency or 16, timeout=settings.timeout_s, root=project.root,
            num_ctx=settings.num_ctx, progress=progress,
        )  # fmt: skip
        maker = _Maker(project, settings, eval_settings, helper, source, max_cost, progress, questions)
        for e in examples:
            maker.dupes.add_if_new(e.prompt)

        async def main() -> None:
            try:
                maker.price_bound = await preflight(helper, settings.model or "", settings.max_tokens)
                held = await maker.from_chunks("held_out", unused, n_held) if n_held else set()
                seen_pool = [c for c in all_ids if c in used] if used else [c for c in unused if c not in held]
                rng.shuffle(seen_pool)
                await maker.from_chunks("seen", seen_pool, n_seen + n_held - maker_count("held_out"))
                await maker.paraphrases(examples, n_para)
            finally:
                if provider is None:
                    await helper.aclose()

        def maker_count(kind: str) -> int:
            return sum(item.kind == kind for item in maker.items)

        if n_held and not unused:
            maker.warnings.append("every chunk is already used by the training data: no held-out questions")
        asyncio.run(main())
    if not maker.items:
        raise BadInput(
            "the helper wrote no usable eval question (nothing was written)",
            hint=f"dropped: {maker.dropped or 'none'}; try another helper model or check prompts/evalset.md",
        )
    if len(maker.items) < questions:
        maker.warnings.append(f"{len(maker.items)} of {questions} questions: the documents or the helper gave no more")
    text = "".join(json.dumps(item.to_dict(), ensure_ascii=False) + "\n" for item in maker.items)
    atomic_write_text(project.eval_set, text)
    frozen = load(project)
    assert frozen is not None
    return EvalSetResult(
        str(project.eval_set), frozen.version, len(frozen.items), maker.asked, frozen.counts(), dict(maker.dropped),
        maker.usage.to_dict(), tuple(maker.warnings), round(time.monotonic() - started, 3),
        {"provider": settings.provider, "model": settings.model, "base_url": settings.base_url, "from": helper_from},
    )  # fmt: skip
