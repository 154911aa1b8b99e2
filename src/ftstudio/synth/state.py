"""The generation runs' state, in `projects/<name>/generate.db` (SQLite), so a stopped run resumes exactly.

A task (one request: a chunk, or none in topic-only mode) is recorded *before* its request is sent and marked done
only *after* its pairs are in the JSONL file, whose lines carry `meta.run` and `meta.task`. On resume the file is the
truth: tasks whose lines are there count as done, the other pending tasks are sent again with the same chunk, so no
chunk is assigned twice and no pair is lost or written twice. Tasks may be recorded ahead of sending; those a
finished run never sent are released. Chunk use counts are kept per project, so the whole store is covered before
any chunk is reused, across runs too.
"""

from __future__ import annotations

import heapq
import json
import random
import sqlite3
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

_MIGRATIONS = [
    """
    CREATE TABLE runs (
        id TEXT PRIMARY KEY, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
        target INTEGER NOT NULL, mode TEXT NOT NULL, topic TEXT, provider TEXT, model TEXT,
        status TEXT NOT NULL, stop_reason TEXT,
        written INTEGER NOT NULL DEFAULT 0, requests INTEGER NOT NULL DEFAULT 0,
        retries INTEGER NOT NULL DEFAULT 0, failures INTEGER NOT NULL DEFAULT 0,
        tokens_in INTEGER NOT NULL DEFAULT 0, tokens_out INTEGER NOT NULL DEFAULT 0,
        cost_usd REAL NOT NULL DEFAULT 0, dropped TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE tasks (
        id INTEGER PRIMARY KEY, run_id TEXT NOT NULL REFERENCES runs(id), chunk_ids TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending', kept INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX tasks_run_state ON tasks(run_id, state);
    CREATE TABLE chunk_use (chunk_id INTEGER PRIMARY KEY, uses INTEGER NOT NULL);
    """,
    # The helper's address, so a later step (the eval set) can use the helper of the last run (never a key).
    "ALTER TABLE runs ADD COLUMN base_url TEXT",
]


STATE_FILE = "generate.db"


def last_run_helper(project_dir: Path) -> tuple[str, dict[str, str | None]] | None:
    """The helper (provider, model, base URL; a key is never recorded) of the project's newest generation run, with
    that run's id; None when the project has none."""
    path = project_dir / STATE_FILE
    if not path.is_file():
        return None
    with RunState.open(path) as state:
        return state.last_helper()


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class RunRecord:
    id: str
    target: int
    mode: str
    topic: str | None
    provider: str | None
    model: str | None
    status: str
    stop_reason: str | None = None
    written: int = 0
    requests: int = 0
    retries: int = 0
    failures: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    dropped: dict[str, int] = field(default_factory=dict)
    created_at: str = ""
    base_url: str | None = None


@dataclass(frozen=True)
class Task:
    id: int
    chunk_ids: tuple[int, ...]


class RunState:
    """Open with `RunState.open(path)`; one writer (the generation loop) at a time."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self._heap: list[tuple[int, float, int]] = []

    @classmethod
    def open(cls, path: Path) -> RunState:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, isolation_level=None)
        conn.row_factory = sqlite3.Row
        # WAL + NORMAL: a commit survives the process being killed (the OS has it); only power loss can lose
        # the last commits, and the JSONL file (fsynced) is what resume trusts.
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for i, script in enumerate(_MIGRATIONS[version:], version + 1):
            conn.executescript(f"BEGIN; {script}; PRAGMA user_version={i}; COMMIT;")
        return cls(conn)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> RunState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # runs -------------------------------------------------------------------------------------------------------
    def _record(self, row: sqlite3.Row) -> RunRecord:
        data = dict(row)
        data["dropped"] = json.loads(data["dropped"])
        data.pop("updated_at")
        return RunRecord(**data)

    def unfinished_run(self) -> RunRecord | None:
        row = self.conn.execute(
            "SELECT * FROM runs WHERE status != 'done' ORDER BY created_at DESC, rowid DESC LIMIT 1"
        ).fetchone()
        return self._record(row) if row else None

    def get_run(self, run_id: str) -> RunRecord | None:
        row = self.conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        return self._record(row) if row else None

    def runs(self) -> list[RunRecord]:
        return [self._record(r) for r in self.conn.execute("SELECT * FROM runs ORDER BY created_at, rowid")]

    def last_helper(self) -> tuple[str, dict[str, str | None]] | None:
        """(run id, its provider, model and base URL) of the newest run that named a model; None without one."""
        row = self.conn.execute(
            "SELECT id, provider, model, base_url FROM runs WHERE model != '' ORDER BY created_at DESC, rowid DESC"
            " LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        return row["id"], {"provider": row["provider"], "model": row["model"], "base_url": row["base_url"]}

    def new_run(
        self, target: int, mode: str, topic: str | None, provider: str, model: str, base_url: str | None = None
    ) -> RunRecord:
        run_id = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        stamp = now()
        self.conn.execute(
            "INSERT INTO runs (id, created_at, updated_at, target, mode, topic, provider, model, base_url, status)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'running')",
            (run_id, stamp, stamp, target, mode, topic, provider, model, base_url),
        )
        return self.get_run(run_id)  # type: ignore[return-value]

    def abandon(self, run_id: str) -> None:
        """Close an unfinished run short of its target (its pending tasks are dropped, their chunks released)."""
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            for (chunk_ids,) in self.conn.execute(
                "SELECT chunk_ids FROM tasks WHERE run_id = ? AND state = 'pending'", (run_id,)
            ).fetchall():
                for cid in json.loads(chunk_ids):
                    self.conn.execute("UPDATE chunk_use SET uses = MAX(uses - 1, 0) WHERE chunk_id = ?", (cid,))
            self.conn.execute("UPDATE tasks SET state = 'dropped' WHERE run_id = ? AND state = 'pending'", (run_id,))
            self.conn.execute(
                "UPDATE runs SET status = 'done', stop_reason = 'abandoned', updated_at = ? WHERE id = ?",
                (now(), run_id),
            )

    def save_run(self, run: RunRecord) -> None:
        self.conn.execute(
            "UPDATE runs SET updated_at=?, status=?, stop_reason=?, written=?, requests=?, retries=?, failures=?,"
            " tokens_in=?, tokens_out=?, cost_usd=?, dropped=?, provider=?, model=?, base_url=? WHERE id=?",
            (
                now(),
                run.status,
                run.stop_reason,
                run.written,
                run.requests,
                run.retries,
                run.failures,
                run.tokens_in,
                run.tokens_out,
                run.cost_usd,
                json.dumps(run.dropped, sort_keys=True),
                run.provider,
                run.model,
                run.base_url,
                run.id,
            ),
        )

    # tasks ------------------------------------------------------------------------------------------------------
    def reconcile(self, run_id: str, tasks_in_file: dict[int, int]) -> None:
        """Mark done the pending tasks whose pairs reached the file before a crash (task id → pairs in file)."""
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            for task_id, kept in tasks_in_file.items():
                self.conn.execute(
                    "UPDATE tasks SET state = 'done', kept = ? WHERE id = ? AND run_id = ? AND state = 'pending'",
                    (kept, task_id, run_id),
                )

    def pending_tasks(self, run_id: str) -> list[Task]:
        rows = self.conn.execute(
            "SELECT id, chunk_ids FROM tasks WHERE run_id = ? AND state = 'pending' ORDER BY id", (run_id,)
        )
        return [Task(r["id"], tuple(json.loads(r["chunk_ids"]))) for r in rows]

    def load_candidates(self, chunk_ids: Iterable[int], seed: int | None = None) -> None:
        """Set the chunks this run draws from; the least used come first, ties in random order."""
        ids = list(chunk_ids)
        uses = dict(self.conn.execute("SELECT chunk_id, uses FROM chunk_use").fetchall())
        rng = random.Random(seed)
        self._heap = [(uses.get(cid, 0), rng.random(), cid) for cid in ids]
        heapq.heapify(self._heap)

    @property
    def candidate_count(self) -> int:
        return len(self._heap)

    def assign_many(self, run_id: str, n: int, with_chunk: bool) -> list[Task]:
        """Record `n` new tasks (each drawing the least-used chunk when `with_chunk`), committed in one go."""
        if n <= 0:
            return []
        rows: list[tuple[int, ...]] = []
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            for _ in range(n):
                chunk_ids: tuple[int, ...] = ()
                if with_chunk:
                    uses, tie, cid = heapq.heappop(self._heap)
                    heapq.heappush(self._heap, (uses + 1, tie, cid))
                    self.conn.execute(
                        "INSERT INTO chunk_use (chunk_id, uses) VALUES (?, 1)"
                        " ON CONFLICT(chunk_id) DO UPDATE SET uses = uses + 1",
                        (cid,),
                    )
                    chunk_ids = (cid,)
                rows.append(chunk_ids)
            tasks = []
            for chunk_ids in rows:
                cur = self.conn.execute(
                    "INSERT INTO tasks (run_id, chunk_ids) VALUES (?, ?)", (run_id, json.dumps(list(chunk_ids)))
                )
                tasks.append(Task(int(cur.lastrowid), chunk_ids))
        return tasks

    def release(self, tasks: list[Task]) -> None:
        """Drop pending tasks that were never sent (their chunks' use counts given back), in one transaction."""
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany(
                "UPDATE chunk_use SET uses = MAX(uses - 1, 0) WHERE chunk_id = ?",
                [(cid,) for t in tasks for cid in t.chunk_ids],
            )
            self.conn.executemany(
                "UPDATE tasks SET state = 'dropped' WHERE id = ? AND state = 'pending'", [(t.id,) for t in tasks]
            )

    def finish_tasks(self, done: Iterable[tuple[int, int]], run: RunRecord) -> None:
        """Mark tasks done (task id, pairs kept) and save the run's counters, in one transaction."""
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany("UPDATE tasks SET state = 'done', kept = ? WHERE id = ?", [(k, t) for t, k in done])
            self.save_run(run)

    def task_chunk_counts(self) -> dict[int, int]:
        return dict(self.conn.execute("SELECT chunk_id, uses FROM chunk_use").fetchall())


# Why a run stopped short of its target, and what gives more: one wording for the CLI, the studio and --json.
# A run that wrote pairs and stopped for one of these is partly done (the CLI's exit code 1); what it wrote is kept.
STOP_REASONS: dict[str, tuple[str, str]] = {
    "exhausted": (
        "the documents gave no more new pairs (the helper's last replies were all duplicates or filtered out)",
        "add documents or a --topic, or ask for fewer --pairs; a stronger helper model or looser filters in "
        "[synth] may find more",
    ),
    "max_cost": ("the next requests could go over the cost limit", "raise --max-cost to write more"),
    "cancelled": ("stopped by request", "run it again to resume"),
}


def run_summary(run: RunRecord) -> dict[str, Any]:
    short = run.status != "done"
    why, hint = STOP_REASONS.get(run.stop_reason or "", (run.stop_reason, None)) if short else (None, None)
    if run.stop_reason == "exhausted" and short and not run.written:
        why = "none of the helper's replies gave a usable pair (each was a duplicate or filtered out)"
    return {
        "run": run.id,
        "status": run.status,
        "stop_reason": run.stop_reason,
        "target": run.target,
        "mode": run.mode,
        "topic": run.topic,
        "provider": run.provider,
        "model": run.model,
        "written": run.written,
        "dropped": dict(run.dropped),
        "requests": run.requests,
        "retries": run.retries,
        "failures": run.failures,
        "tokens": {"in": run.tokens_in, "out": run.tokens_out},
        "cost_usd": round(run.cost_usd, 6),
        "partial": run.status == "stopped" and run.stop_reason != "cancelled" and run.written > 0,
        "stopped_because": why,
        "to_get_more": hint,
    }
