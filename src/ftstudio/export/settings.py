"""Settings for the export stage (the `[export]` table of project.toml)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Format = Literal["adapter", "merged", "gguf"]
# The GGUF types ftstudio writes: the first five in pure Python, the K-quants through llama.cpp's own quantizer.
QUANTS = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_k_m", "q5_k_m", "q6_k")
K_QUANTS = ("q4_k_m", "q5_k_m", "q6_k")


class ExportSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    format: Format = Field("gguf", description="What to export: the LoRA adapter, a merged model, or a GGUF file.")
    quant: str = Field(
        "q8_0",
        description="GGUF type: f32, f16, bf16, q8_0, q4_0 (pure Python) or q4_k_m, q5_k_m, q6_k (llama-cpp-python).",
    )
    verify: bool | None = Field(
        None,
        description="Check the GGUF in llama.cpp against the merged model in transformers; "
        "unset means on when llama-cpp-python is installed.",
    )
    verify_prompts: int = Field(3, ge=1, le=20, description="How many held-out prompts the verification runs.")
    verify_tokens: int = Field(8, ge=1, le=64, description="How many tokens each verification prompt generates.")
    max_shard_mb: int = Field(2048, ge=16, description="Largest safetensors shard of a merged model, in MiB.")
