"""Settings for the generation stage (the `[synth]` table of project.toml). Never holds an API key."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SynthSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider: Literal["ollama", "openrouter", "openai"] = Field("ollama", description="Where the helper model runs.")
    model: str | None = Field(None, description="Helper model name as the provider lists it (e.g. llama3:8b).")
    base_url: str | None = Field(None, description="Provider address; the provider's default when empty.")
