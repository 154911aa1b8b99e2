"""project.toml as one typed model: one table per stage, each the stage's own settings model.

A leaf: the stage settings modules import only pydantic, and this module only them, so any stage, face or request
can read settings without importing the workspace (`ftstudio.project`) or another stage's code. The `[eval]`
table is defined here: it belongs to no single stage (the eval set is made by synth, the card run by eval).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ftstudio.basemodels.settings import BaseModelSettings
from ftstudio.export.settings import ExportSettings
from ftstudio.knowledge.settings import KnowledgeSettings
from ftstudio.synth.settings import SynthSettings
from ftstudio.train.settings import TrainSettings


class EvalSettings(BaseModel):
    """The evaluation set and the judge (the `[eval]` table of project.toml); the judge is the synth helper."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    held_out_share: float = Field(
        0.3, ge=0, le=1, description="Share of eval questions from chunks the training data never sees."
    )
    paraphrase_share: float = Field(
        0.3, ge=0, le=1, description="Share of eval questions that rephrase a training question (same fact)."
    )
    per_chunk: int = Field(2, ge=1, le=20, description="Eval questions asked for per chunk.")
    judge_model: str | None = Field(None, description="Judge model (same provider); empty: the helper model.")
    passages: int = Field(3, ge=1, le=20, description="Top passages from the knowledge store given in '+passages'.")
    max_new_tokens: int = Field(128, ge=1, description="Longest answer a model writes for the report card.")
    max_cost: float | None = Field(None, ge=0, description="Stop judging before spending more USD; empty: no cap.")
    seed: int = Field(0, description="Seed of the judge and of the eval set's draw (temperature is always 0).")


class ProjectSettings(BaseModel):
    """Everything in project.toml: one table per stage."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    knowledge: KnowledgeSettings = Field(default_factory=KnowledgeSettings)
    base_model: BaseModelSettings = Field(default_factory=BaseModelSettings)
    synth: SynthSettings = Field(default_factory=SynthSettings)
    train: TrainSettings = Field(default_factory=TrainSettings)
    export: ExportSettings = Field(default_factory=ExportSettings)
    eval: EvalSettings = Field(default_factory=EvalSettings)


def settings_errors(exc: ValidationError, source: str) -> str:
    """Every problem of a settings validation, one per line, each naming where it is."""
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"{source}: {where}: {err['msg']} (got {err.get('input')!r})")
    return "\n".join(lines)
