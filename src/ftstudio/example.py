"""The offline example project: a short guide to sourdough bread, 34 question-answer pairs about it, a tiny local
base model and the offline rule-based helper, so that a first-time user can try every step (make an eval set, train
and read the report card too) without a download or a helper model (`ftstudio ui --example`,
`ftstudio.example_project()`).

The guide and the pairs ship inside the package (`ftstudio/examples/`), so a wheel install has them too. Each part
is made only when missing, so running it again is cheap and never undoes the user's own changes.
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from ftstudio.errors import NotFound
from ftstudio.progress import ProgressFn, report
from ftstudio.project import Project

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

EXAMPLE_NAME = "example"
TINY_MODEL_DIR = "models/tiny-llama"


def example_files() -> Traversable:
    """The example's files as package resources: `sourdough.md` and `sft_data.jsonl`."""
    return resources.files("ftstudio") / "examples"


def ensure_example(root: Path | str | None = None, progress: ProgressFn | None = None) -> Project:
    """Create (or complete) the `example` project under `root` and return it.

    Copies the guide into uploads/ and ingests it, copies the pairs to data/, builds a tiny Llama-style model inside
    the project and selects it as the base model, and picks the offline helper when no helper model is set.
    """
    source = example_files()
    try:
        project = Project.open(EXAMPLE_NAME, root)
    except NotFound:
        project = Project.create(EXAMPLE_NAME, root)
        report(progress, "example", message=f"created project {project.name}")

    if not project.sft_data.exists():
        project.data_dir.mkdir(parents=True, exist_ok=True)
        project.sft_data.write_bytes((source / "sft_data.jsonl").read_bytes())
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

    documents = sorted((d for d in source.iterdir() if d.name.endswith(".md")), key=lambda d: d.name)
    if documents and not project.knowledge_db.exists():
        from ftstudio.knowledge.ingest import ingest

        report(progress, "example", message="ingesting the example document")
        uploads = project.dir / "uploads"
        uploads.mkdir(exist_ok=True)
        copies = []
        for doc in documents:
            with resources.as_file(doc) as path:
                copies.append(Path(shutil.copyfile(path, uploads / doc.name)))
        result = ingest(project, copies)
        if result.failed:
            raise NotFound(f"ingesting the example failed: {result.failed[0].error}", hint="report this as a bug")
    return project
