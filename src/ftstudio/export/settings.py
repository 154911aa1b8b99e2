"""Settings for the export stage (the `[export]` table of project.toml)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ExportSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quant: str = Field("q8_0", description="GGUF quantization type.")
