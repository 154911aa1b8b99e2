"""project.toml as one typed model: one table per stage, each the stage's own settings model.

A leaf: the stage settings modules import only pydantic, and this module only them, so any stage, face or request
can read settings without importing the workspace (`ftstudio.project`) or another stage's code.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ftstudio.basemodels.settings import BaseModelSettings
from ftstudio.export.settings import ExportSettings
from ftstudio.knowledge.settings import KnowledgeSettings
from ftstudio.synth.settings import SynthSettings
from ftstudio.train.settings import TrainSettings


class ProjectSettings(BaseModel):
    """Everything in project.toml: one table per stage."""

    model_config = ConfigDict(extra="forbid")

    knowledge: KnowledgeSettings = Field(default_factory=KnowledgeSettings)
    base_model: BaseModelSettings = Field(default_factory=BaseModelSettings)
    synth: SynthSettings = Field(default_factory=SynthSettings)
    train: TrainSettings = Field(default_factory=TrainSettings)
    export: ExportSettings = Field(default_factory=ExportSettings)


def settings_errors(exc: ValidationError, source: str) -> str:
    """Every problem of a settings validation, one per line, each naming where it is."""
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"{source}: {where}: {err['msg']} (got {err.get('input')!r})")
    return "\n".join(lines)
