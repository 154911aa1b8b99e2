"""Settings for the base-model stage (the `[base_model]` table of project.toml)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class BaseModelSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    model: str | None = Field(
        None,
        description="The model to fine-tune: a Hugging Face hub id, a local folder, a .gguf file or ollama:NAME[:TAG].",
    )
    trust_remote_code: bool = Field(
        False, description="Run Python code shipped with the model repository. Only for repositories you trust."
    )
