"""Settings for the knowledge stage (the `[knowledge]` table of project.toml)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class KnowledgeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    chunk_tokens: int = Field(512, ge=16, le=32768, description="Most tokens in one chunk.")
    overlap: int = Field(64, ge=0, description="Tokens a chunk repeats from the end of the one before it.")
    tokenizer: str = Field(
        "auto",
        description="How tokens are counted: 'auto' (the base model's tokenizer when it is on this machine, else a "
        "fast estimate), 'estimate', or a path to a tokenizer.json or a folder holding one.",
    )

    max_document_mb: int = Field(
        512,
        ge=1,
        description="Largest document read, in MB: a bigger file, or an EPUB/DOCX whose parts unpack to more, fails "
        "by name (counted on the bytes actually read).",
    )
    max_unpack_ratio: float = Field(
        100.0,
        ge=1,
        description="Most bytes a part of an EPUB/DOCX may unpack to per compressed byte; more is a zip bomb.",
    )

    def read_limits(self):
        """These caps as the readers apply them (ftstudio.knowledge.safe_read)."""
        from ftstudio.knowledge.safe_read import MB, ReadLimits

        return ReadLimits(max_bytes=self.max_document_mb * MB, max_ratio=self.max_unpack_ratio)

    @model_validator(mode="after")
    def _overlap_below_budget(self) -> KnowledgeSettings:
        if self.overlap >= self.chunk_tokens:
            raise ValueError(
                f"overlap ({self.overlap}) must be smaller than chunk_tokens ({self.chunk_tokens}); "
                "try an overlap of about an eighth of the budget"
            )
        return self
