"""Finding the training run to export and the base model it was trained on.

The training stage writes `runs/<run-id>/run.json` (id, base_model, method, status, settings…) and the PEFT adapter in
`runs/<run-id>/adapter/`. Everything export needs from that contract is read in `read_run`, in one place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ftstudio.errors import BadInput, NotFound
from ftstudio.project import Project


@dataclass(frozen=True)
class Run:
    """A finished (or stopped) training run: where its adapter is and which base model it adapts."""

    id: str
    dir: Path
    base_model: str
    method: str
    status: str
    system_prompt: str | None

    @property
    def adapter_dir(self) -> Path:
        return self.dir / "adapter"


def read_run(run_dir: Path) -> Run:
    """Read `run_dir/run.json`; BadInput naming the file when it is unreadable or lacks a key."""
    path = run_dir / "run.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        settings = raw.get("settings") or {}
        return Run(
            id=str(raw.get("id") or run_dir.name),
            dir=run_dir,
            base_model=str(raw["base_model"]),
            method=str(raw.get("method", "lora")),
            status=str(raw.get("status", "unknown")),
            system_prompt=settings.get("system_prompt"),
        )
    except FileNotFoundError as exc:
        raise NotFound(f"run folder {run_dir} has no run.json", hint="pick another run with --run") from exc
    except (json.JSONDecodeError, KeyError, AttributeError) as exc:
        raise BadInput(f"{path}: not a valid run record ({exc})", hint="pick another run with --run") from exc


def find_run(project: Project, run_id: str | None = None) -> Run:
    """The run named `run_id`, else the latest completed run; raises when there is none or it has no adapter."""
    if run_id is not None:
        run_dir = project.runs_dir / run_id
        if not (run_dir / "run.json").is_file():
            known = ", ".join(_run_dirs(project)) or "none yet"
            raise NotFound(f"project {project.name!r} has no run {run_id!r} (runs: {known})", hint="pass --run RUN")
        run = read_run(run_dir)
    else:
        completed = [r for r in (read_run(project.runs_dir / d) for d in _run_dirs(project)) if r.status == "completed"]
        if not completed:
            raise NotFound(
                f"project {project.name!r} has no completed training run",
                hint=f"train one with `ftstudio train {project.name}`, or name a stopped run with --run",
            )
        run = max(completed, key=lambda r: ((r.dir / "run.json").stat().st_mtime, r.id))
    adapter = run.adapter_dir
    if not (adapter / "adapter_config.json").is_file() or not (adapter / "adapter_model.safetensors").is_file():
        raise BadInput(
            f"run {run.id!r} (status {run.status}) has no adapter yet: {adapter} lacks adapter_config.json "
            "or adapter_model.safetensors",
            hint="wait for the run to finish, or resume it with `ftstudio train NAME --resume RUN`",
        )
    return run


def _run_dirs(project: Project) -> list[str]:
    if not project.runs_dir.is_dir():
        return []
    return sorted(d.name for d in project.runs_dir.iterdir() if (d / "run.json").is_file())


def resolve_base(base_model: str) -> Path:
    """A local folder holding the base model: the folder itself, or the Hugging Face cache's copy of a hub id."""
    folder = Path(base_model).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise BadInput(f"base model folder {folder} has no config.json", hint="point the run at a model folder")
        return folder
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(
                base_model,
                allow_patterns=["*.json", "*.safetensors", "*.jinja", "tokenizer*", "*.model", "*.txt"],
            )
        )
    except Exception as exc:  # the hub client raises many kinds: offline, gated, missing
        raise NotFound(
            f"base model {base_model!r} is neither a local folder nor in the Hugging Face cache ({exc})",
            hint="connect to the internet once, or set HF_HOME to the cache that holds it",
        ) from exc
