"""Settings for the training stage (the `[train]` table of project.toml)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class TrainSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Literal["lora", "qlora"] = Field(
        "lora", description="LoRA on a 16/32-bit base; QLoRA on a 4-bit base (CUDA)."
    )
    system_prompt: str | None = Field(None, description="System prompt rendered into every training example.")
