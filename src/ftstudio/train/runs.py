"""Training runs on disk: `runs/<run-id>/` with run.json, metrics.jsonl, checkpoints, adapter/ and eval.json.

Run ids sort by time (`20261125-031500-123-a1b2`, see `time_sorted_name`). run.json is a `RunRecord`, rewritten
atomically at every state change, so a reader (the UI, `ftstudio export`) always sees a whole document.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ftstudio.errors import NotFound
from ftstudio.fsutil import atomic_write_text, time_sorted_name
from ftstudio.project import Project
from ftstudio.train.settings import TrainSettings

STATUSES = ("running", "completed", "stopped", "failed")


def new_run_id() -> str:
    return time_sorted_name()


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class RunRecord:
    """run.json: what a run trains (model, settings, data, device) and where it stands (status, steps, losses).

    `settings` and `world_size` are the run's as it started: a resume under another number of processes keeps
    them, and derives its per-process batch from them. Only `id` and `base_model` must be in a run.json; other
    missing keys (older runs, hand-written folders) take the defaults here, and keys this version does not know
    are kept in `extra` and written back as they were. A field the file lacked is written back only once it
    holds something other than its default, so an older run.json saved unchanged stays byte for byte the same.
    """

    id: str
    base_model: str
    method: str | None = None
    backend: str | None = None
    backend_reason: str | None = None
    precision: str | None = None  # the training steps' arithmetic: fp32, bf16 (CPU autocast), or a GPU's dtype
    precision_reason: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    started_at: str | None = None
    examples: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    probe: dict[str, Any] | None = None
    device: str | None = None
    world_size: int = 1
    sharding: str | None = None
    trainable_parameters: int | None = None
    total_steps: int | None = None
    status: str = "failed"  # a run.json without a status never got past its first write
    error: str | None = None
    finished_at: str | None = None
    steps: int = 0
    final_train_loss: float | None = None
    final_eval_loss: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    missing: frozenset[str] = field(default=frozenset(), repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Any, run_id: str) -> RunRecord:
        """The record of a run.json's content; `run_id` (the folder's name) when it names none. ValueError when
        it is not an object with a base_model."""
        if not isinstance(data, dict) or not isinstance(data.get("base_model"), str):
            raise ValueError("run.json is not an object with a base_model")
        known = {f.name for f in fields(cls)} - {"extra", "missing"}
        extra = {k: v for k, v in data.items() if k not in known}
        missing = frozenset(known - data.keys() - {"id"})
        return cls(**{"id": run_id, **{k: v for k, v in data.items() if k in known}}, extra=extra, missing=missing)

    @classmethod
    def read(cls, run_dir: Path) -> RunRecord:
        """The record in `run_dir`/run.json; OSError or ValueError when it is missing or unreadable."""
        return cls.from_dict(json.loads((run_dir / "run.json").read_text(encoding="utf-8")), run_dir.name)

    def to_dict(self) -> dict[str, Any]:
        """run.json's content: the fields in their order, then the unknown keys it was read with."""
        defaults = RunRecord(id=self.id, base_model=self.base_model)
        written = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in ("extra", "missing")
            and not (f.name in self.missing and getattr(self, f.name) == getattr(defaults, f.name))
        }
        return {**written, **self.extra}

    def write(self, run_dir: Path) -> None:
        atomic_write_text(run_dir / "run.json", json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n")

    def train_settings(self) -> TrainSettings:
        return TrainSettings.model_validate(self.settings)

    def running(self, steps: int) -> None:
        """Started or resumed at `steps`."""
        self.status, self.error, self.finished_at, self.steps = "running", None, None, steps

    def stepped(self, steps: int, train_loss: float) -> None:
        self.steps, self.final_train_loss = steps, round(train_loss, 6)

    def stopped(self) -> None:
        """Cancelled after a checkpoint: resumable."""
        self.status, self.finished_at = "stopped", now_iso()

    def failed(self, error: str) -> None:
        self.status, self.error, self.finished_at = "failed", error, now_iso()

    def completed(self, final_eval_loss: float | None) -> None:
        self.status, self.finished_at, self.final_eval_loss = "completed", now_iso(), final_eval_loss


@dataclass(frozen=True)
class Run:
    """One run folder and its run.json."""

    id: str
    path: Path
    record: RunRecord

    @property
    def info(self) -> dict[str, Any]:
        """run.json as a dict, for readers that show it whole."""
        return self.record.to_dict()

    @property
    def status(self) -> str:
        return self.record.status

    @property
    def base_model(self) -> str:
        return self.record.base_model

    @property
    def system_prompt(self) -> str | None:
        return (self.record.settings or {}).get("system_prompt")

    @property
    def adapter_dir(self) -> Path:
        return self.path / "adapter"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    def save(self) -> None:
        """Write the record to run.json (atomically)."""
        self.record.write(self.path)

    def checkpoints(self) -> list[Path]:
        """Complete checkpoints, oldest first (a checkpoint is complete once its trainer_state.json exists)."""
        found = [p for p in self.path.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
        return sorted(found, key=lambda p: int(p.name.split("-")[1]))

    def metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_path.is_file():
            return []
        return [json.loads(line) for line in self.metrics_path.read_text(encoding="utf-8").splitlines() if line]

    def eval_report(self) -> dict[str, Any] | None:
        path = self.path / "eval.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _read(path: Path) -> Run | None:
    try:
        record = RunRecord.read(path)
    except (OSError, ValueError):
        return None
    return Run(path.name, path, record)


def list_runs(project: Project) -> list[Run]:
    """Every run of the project, oldest first."""
    if not project.runs_dir.is_dir():
        return []
    runs = (_read(p) for p in sorted(project.runs_dir.iterdir()) if p.is_dir())
    return [r for r in runs if r is not None]


def load_run(project: Project, run_id: str) -> Run:
    """One run by id; NotFound naming the runs there are."""
    run = _read(project.runs_dir / run_id) if "/" not in run_id and run_id not in {".", ".."} else None
    if run is None:
        have = ", ".join(r.id for r in list_runs(project)[-5:]) or "none yet"
        raise NotFound(f"no run {run_id!r} in project {project.name!r}", hint=f"runs: {have} (`ftstudio train NAME`)")
    return run


def latest_run(project: Project, completed: bool = True) -> Run | None:
    """The newest run (the newest completed one by default), or None."""
    runs = [r for r in list_runs(project) if not completed or r.status == "completed"]
    return runs[-1] if runs else None
