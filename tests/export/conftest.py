"""Export-stage fixtures: a project holding a training run whose adapter really changes the model.

Until the training stage lands, the run is made here the way training leaves it: a PEFT LoRA adapter on a kit model
(with lora_B set to random values, so merging really changes weights) in runs/<id>/adapter and a run.json.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ftstudio.project import Project


@pytest.fixture(scope="session")
def adapter_for(tiny_model, tmp_path_factory):
    """`adapter_for("llama", hidden_size=256)` → (base folder, adapter folder), built once per session."""
    built: dict[tuple, tuple[Path, Path]] = {}

    def get(arch: str = "llama", **options) -> tuple[Path, Path]:
        key = (arch, tuple(sorted(options.items())))
        if key not in built:
            import torch
            from peft import LoraConfig, get_peft_model
            from transformers import AutoModelForCausalLM

            base = tiny_model(arch, **options)
            model = AutoModelForCausalLM.from_pretrained(base)
            # Seeded before PEFT initialises lora_A too: the adapter must not depend on which tests ran first.
            torch.manual_seed(1)
            peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
            with torch.no_grad():
                for name, param in peft_model.named_parameters():
                    if "lora_B" in name:
                        param.normal_(0.0, 0.1)
            folder = tmp_path_factory.mktemp(f"adapter-{arch}") / "adapter"
            peft_model.save_pretrained(folder)
            built[key] = (base, folder)
        return built[key]

    return get


def _add_run(project: Project, base: Path, adapter: Path | None, run_id: str = "run-1", status: str = "completed",
            system_prompt: str | None = None) -> Path:  # fmt: skip
    """Write runs/<run_id>/ as training does: run.json and (unless None) the adapter."""
    run_dir = project.runs_dir / run_id
    run_dir.mkdir(parents=True)
    record = {"id": run_id, "base_model": str(base), "method": "lora", "status": status,
              "settings": {"system_prompt": system_prompt}}  # fmt: skip
    (run_dir / "run.json").write_text(json.dumps(record))
    if adapter is not None:
        shutil.copytree(adapter, run_dir / "adapter")
    return run_dir


@pytest.fixture
def trained_project(workspace, adapter_for):
    """`trained_project("qwen2", name="demo", **kit_options)` → a Project with one completed run `run-1`."""

    def make(arch: str = "llama", name: str = "demo", system_prompt: str | None = None, **options) -> Project:
        base, adapter = adapter_for(arch, **options)
        project = Project.create(name, workspace)
        _add_run(project, base, adapter, system_prompt=system_prompt)
        return project

    return make


@pytest.fixture
def add_run():
    """The function that writes a run folder: `add_run(project, base, adapter_or_None, run_id=..., status=...)`."""
    return _add_run
