"""Finding the training run to export and the local folder of the base model it was trained on.

Runs are the training stage's (`ftstudio.train.runs`); export only adds what it needs: an adapter must be there.
"""

from __future__ import annotations

from pathlib import Path

from ftstudio.errors import BadInput, NotFound
from ftstudio.project import Project
from ftstudio.train.runs import Run, latest_run, load_run


def find_run(project: Project, run_id: str | None = None) -> Run:
    """The run named `run_id`, else the latest completed run; raises when there is none or it has no adapter."""
    run = load_run(project, run_id) if run_id is not None else latest_run(project)
    if run is None:
        raise NotFound(
            f"project {project.name!r} has no completed training run",
            hint=f"train one with `ftstudio train {project.name}`, or name a stopped run with --run",
        )
    adapter = run.adapter_dir
    if not (adapter / "adapter_config.json").is_file() or not (adapter / "adapter_model.safetensors").is_file():
        raise BadInput(
            f"run {run.id!r} (status {run.status}) has no adapter yet: {adapter} lacks adapter_config.json "
            "or adapter_model.safetensors",
            hint="wait for the run to finish, or resume it with `ftstudio train NAME --resume RUN`",
        )
    return run


def resolve_base(base_model: str) -> Path:
    """A local folder holding the base model: the folder itself, a GGUF spec's imported folder (ftstudio's cache),
    or the Hugging Face cache's copy of a hub id."""
    from ftstudio.basemodels.gguf_import import imported_folder, is_gguf_spec

    if is_gguf_spec(base_model):
        return imported_folder(base_model)
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
