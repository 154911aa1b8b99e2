"""Per-family fixtures, built once per session: a project trained a few steps on the family's tiny model, and its
exports (merged safetensors as the transformers reference, GGUF in F32, F16 and Q8_0 with their Modelfiles)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from ftstudio.project import Project

QA = [(f"What is {a} plus {b}?", f"{a} plus {b} is {a + b}.") for a in range(1, 4) for b in range(1, 4)]
QUANTS = ("f32", "f16", "q8_0")


@dataclass
class Exported:
    project: Project
    merged: Path  # the merged model the GGUFs were written from
    gguf: dict[str, Path]
    modelfile: Path


@pytest.fixture(scope="session")
def exported(tiny_model, tmp_path_factory):
    """`exported("qwen3")` → the family's tiny model trained 2 steps and exported (see `Exported`)."""
    from ftstudio.export.exporter import export
    from ftstudio.train.runner import train

    built: dict[str, Exported] = {}

    def get(name: str) -> Exported:
        if name not in built:
            project = Project.create("fam", tmp_path_factory.mktemp(f"family-{name}"))
            project.update_settings("base_model", model=str(tiny_model(name)))
            project.update_settings("train", max_steps=2, probe_steps=0, compare_answers=0, eval_every=1000,
                                    learning_rate=3e-3, batch_size=4, warmup_ratio=0.0)  # fmt: skip
            project.data_dir.mkdir(parents=True, exist_ok=True)
            project.sft_data.write_text(
                "".join(json.dumps({"instruction": q, "output": a}) + "\n" for q, a in QA), encoding="utf-8"
            )
            run = train(project, project.settings().train)
            assert run.status == "completed"
            merged = Path(export(project, fmt="merged").files[0]["path"]).parent
            paths = {}
            for quant in QUANTS:
                result = export(project, fmt="gguf", quant=quant, verify=False)
                paths[quant] = Path(result.files[0]["path"])
            built[name] = Exported(project, merged, paths, Path(result.files[1]["path"]))
        return built[name]

    return get
