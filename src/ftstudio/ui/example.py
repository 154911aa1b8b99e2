"""The offline example project: a short guide to sourdough bread, 34 question-answer pairs about it, a tiny local
base model and the offline rule-based helper, so that a first-time user can click through every tab, make an eval
set, train and read the report card without a download or a helper model (`ftstudio ui --example`).

Each part is made only when missing, so running it again is cheap and never undoes the user's own changes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ftstudio.errors import NotFound
from ftstudio.jobs import registry
from ftstudio.progress import ProgressFn, report
from ftstudio.project import Project

EXAMPLE_NAME = "example"
TINY_MODEL_DIR = "models/tiny-llama"


def examples_dir() -> Path:
    """The `examples/` folder of this checkout (the studio is installed editable by install.sh)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "examples"
        if (candidate / "sft_data.jsonl").is_file():
            return candidate
    raise NotFound(
        "the examples/ folder was not found beside the ftstudio source",
        hint="run from a checkout installed with ./install.sh (pip install -e .)",
    )


def ensure_example(root: Path | str, progress: ProgressFn | None = None) -> Project:
    """Create (or complete) the `example` project under `root` and return it.

    Copies examples/*.md into uploads/ and ingests them, copies examples/sft_data.jsonl to data/, builds a tiny
    Llama-style model inside the project and selects it as the base model, and picks the offline helper when no
    helper model is set.
    """
    source = examples_dir()
    try:
        project = Project.open(EXAMPLE_NAME, root)
    except NotFound:
        project = Project.create(EXAMPLE_NAME, root)
        report(progress, "example", message=f"created project {project.name}")

    if not project.sft_data.exists():
        project.data_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / "sft_data.jsonl", project.sft_data)
        report(progress, "example", message="copied the training data")

    model_dir = project.dir / TINY_MODEL_DIR
    if not (model_dir / "config.json").is_file():
        from ftstudio.basemodels.tiny import build_tiny_model

        report(progress, "example", message="building a tiny offline base model")
        build_tiny_model(model_dir, "llama")
    if not project.settings().base_model.model:
        project.update_settings("base_model", model=str(model_dir))
    if not project.settings().synth.model:
        from ftstudio.synth.providers.offline import MODEL

        project.update_settings("synth", provider="offline", model=MODEL)
        # The tiny model writes noise and rarely stops: short answers keep the comparison and the card quick.
        project.update_settings("train", max_new_tokens=24)
        project.update_settings("eval", max_new_tokens=24)

    documents = sorted(source.glob("*.md"))
    if documents and not project.knowledge_db.exists():
        report(progress, "example", message="ingesting the example document")
        uploads = project.dir / "uploads"
        uploads.mkdir(exist_ok=True)
        copies = [str(shutil.copyfile(doc, uploads / doc.name)) for doc in documents]
        jobs = registry(project.root)
        state = jobs.start(project.name, "ingest", [project.name, *copies])
        state = jobs.wait(project.name, state.id, timeout=600)
        if state.status != "done":
            raise NotFound(f"ingesting the example failed: {state.error}", hint="see the Knowledge tab's log")
    return project
