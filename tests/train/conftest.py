"""Fixtures for the training tests: a project with a tiny kit model as its base and a small over-fit data set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftstudio.project import Project

# Short, regular question/answer pairs a tiny model can over-fit within a few dozen steps.
QA = [(f"What is {a} plus {b}?", f"{a} plus {b} is {a + b}.") for a in range(1, 5) for b in range(1, 5)]


def write_data(project: Project, records: list[dict] | None = None) -> Path:
    records = records if records is not None else [{"instruction": q, "output": a} for q, a in QA]
    project.data_dir.mkdir(parents=True, exist_ok=True)
    project.sft_data.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return project.sft_data


@pytest.fixture
def make_project(workspace, tiny_model):
    """`make_project("qwen2", records=None, **train_settings)`: a project whose base model is a kit model."""
    counter = iter(range(1000))

    def make(arch: str = "llama", records: list[dict] | None = None, model_options: dict | None = None, **train):
        project = Project.create(f"p{next(counter)}-{arch}", workspace)
        project.update_settings("base_model", model=str(tiny_model(arch, **(model_options or {}))))
        defaults = {"probe_steps": 0, "compare_answers": 1, "max_new_tokens": 8, "eval_every": 1000}
        project.update_settings("train", **{**defaults, **train})
        write_data(project, records)
        return project

    return make
