"""Stage 4, training: SFT data → LoRA/QLoRA adapter, with Unsloth on CUDA and transformers + PEFT anywhere."""
