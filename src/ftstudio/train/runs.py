"""Training runs on disk: `runs/<run-id>/` with run.json, metrics.jsonl, checkpoints, adapter/ and eval.json.

Run ids sort by time (`20261125-031500-a1b2`). run.json is rewritten atomically at every state change, so a
reader (the UI, `ftstudio export`) always sees a whole document.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftstudio.errors import NotFound
from ftstudio.fsutil import atomic_write_text
from ftstudio.project import Project

STATUSES = ("running", "completed", "stopped", "failed")


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(2)


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass(frozen=True)
class Run:
    """One run folder and its run.json."""

    id: str
    path: Path
    info: dict[str, Any]

    @property
    def status(self) -> str:
        return self.info.get("status", "failed")

    @property
    def base_model(self) -> str:
        return self.info["base_model"]

    @property
    def system_prompt(self) -> str | None:
        return (self.info.get("settings") or {}).get("system_prompt")

    @property
    def adapter_dir(self) -> Path:
        return self.path / "adapter"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

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


def write_run_info(path: Path, info: dict[str, Any]) -> None:
    atomic_write_text(path / "run.json", json.dumps(info, indent=2, ensure_ascii=False) + "\n")


def _read(path: Path) -> Run | None:
    try:
        info = json.loads((path / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return Run(path.name, path, info)


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
