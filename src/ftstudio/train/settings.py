"""Settings for the training stage (the `[train]` table of project.toml); the whole model is saved with each run."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class TrainSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    method: Literal["lora", "qlora"] = Field(
        "lora", description="LoRA on a 16/32-bit base; QLoRA on a 4-bit NF4 base (needs CUDA and bitsandbytes)."
    )
    system_prompt: str | None = Field(None, description="System prompt rendered into every training example.")
    backend: Literal["auto", "unsloth", "transformers"] = Field(
        "auto", description="auto: Unsloth when CUDA is present and it imports, else transformers + PEFT."
    )
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto",
        description="CPU arithmetic. bf16: the model's matrix products in bfloat16 (autocast; the adapter's weights "
        "and the optimizer stay fp32), on CPUs with AMX or AVX512-BF16 only; fp32: full precision. auto: fp32. "
        "A CUDA GPU trains in bf16 (fp16 without bf16) whatever this says.",
    )
    only_accepted: bool = Field(
        False, description="Train only on pairs accepted in review (rejected pairs are never trained on)."
    )
    # LoRA
    rank: int = Field(16, ge=1, le=1024, description="LoRA rank r: the adapter's capacity.")
    alpha: int = Field(32, ge=1, description="LoRA alpha: the adapter's scale is alpha / rank.")
    dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on the LoRA path.")
    target_modules: list[str] | Literal["auto"] = Field(
        "auto", description="Module names to adapt; auto = every linear projection of the model except the head."
    )
    # Optimisation
    learning_rate: float = Field(2e-4, gt=0, description="Peak learning rate (AdamW).")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay on the adapter weights.")
    scheduler: Literal["linear", "cosine", "constant"] = Field(
        "cosine", description="How the learning rate decays after warm-up."
    )
    warmup_ratio: float = Field(0.03, ge=0, le=1, description="Share of the steps spent warming the rate up.")
    epochs: float = Field(3.0, gt=0, description="Passes over the training split (ignored when max_steps is set).")
    max_steps: int | None = Field(
        None, ge=1, description="Stop after this many optimizer steps (overrides epochs); empty: run the epochs."
    )
    batch_size: int = Field(4, ge=1, description="Examples per micro-batch (per device).")
    grad_accumulation: int = Field(1, ge=1, description="Micro-batches per optimizer step.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    max_seq_length: int = Field(1024, ge=16, description="Longest example in tokens; longer ones are handled below.")
    too_long: Literal["truncate", "drop"] = Field(
        "truncate", description="What to do with an example longer than max_seq_length (the count is reported)."
    )
    seed: int = Field(42, description="Seed for the split, the data order, LoRA initialisation and dropout.")
    gradient_checkpointing: bool = Field(False, description="Recompute activations: less memory, about 30% slower.")
    packing: bool = Field(
        True,
        description="Pack several examples into each sequence (no attention across them) so no compute goes to "
        "padding; off = batches of similar length, padded.",
    )
    pack_length: int = Field(
        512,
        ge=16,
        description="Packed rows hold at most this many tokens (a longer example gets a row of its own); attention "
        "memory grows with the square of a row's length.",
    )
    rows_per_pass: int | None = Field(
        None,
        ge=1,
        description="Packed rows sent through the model at once; fewer use less memory for the same loss. "
        "Default: 1 on the CPU (no speed lost there), all on a GPU.",
    )
    # Evaluation, logging, checkpoints
    eval_fraction: float = Field(0.05, ge=0, lt=1, description="Share of examples held out (at least one).")
    eval_every: int = Field(50, ge=1, description="Evaluate the held-out split every N steps.")
    log_every: int = Field(1, ge=1, description="Write a metrics line every N steps.")
    save_every: int = Field(100, ge=1, description="Save a checkpoint every N steps.")
    keep_checkpoints: int = Field(2, ge=1, description="Keep the last K checkpoints.")
    probe_steps: int = Field(2, ge=0, description="Real steps run before training to measure memory and time.")
    compare_answers: int = Field(3, ge=0, description="Held-out questions answered by base and tuned model at the end.")
    max_new_tokens: int = Field(96, ge=1, description="Longest answer generated for the comparison and chat.")

    @model_validator(mode="after")
    def _check(self) -> TrainSettings:
        if isinstance(self.target_modules, list) and not self.target_modules:
            raise ValueError("target_modules is empty; use 'auto' or name the modules (e.g. ['q_proj', 'v_proj'])")
        return self
