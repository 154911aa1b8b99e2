"""The Unsloth backend: `FastLanguageModel` loads the base (16-bit or 4-bit) and adds LoRA with Unsloth's kernels.

CUDA only; chosen by `choose_backend`. Unsloth patches transformers when imported, so it is imported here, late,
and only when this backend runs. The training loop is the shared one; batches are padded and grouped by length
rather than packed (Unsloth's patched attention is not relied on to honour position-id boundaries).
"""

from __future__ import annotations

from ftstudio.errors import Unavailable
from ftstudio.train.backends import cuda_available
from ftstudio.train.settings import TrainSettings

# Unsloth's documented default set for Llama-like models; used when "auto" cannot inspect the model first.
_DEFAULT_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def load_unsloth(base_model: str, settings: TrainSettings, *, trust_remote_code: bool = False):
    if not cuda_available():
        raise Unavailable("the Unsloth backend needs a CUDA GPU", hint="use --backend transformers")
    try:
        from unsloth import FastLanguageModel
    except ImportError as exc:
        raise Unavailable(
            f"unsloth does not import: {exc}", hint="pip install unsloth, or --backend transformers"
        ) from exc
    from ftstudio.train.backends import find_linear_modules

    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=base_model,
        max_seq_length=settings.max_seq_length,
        dtype=None,  # Unsloth picks bf16 where supported, else fp16
        load_in_4bit=settings.method == "qlora",
        trust_remote_code=trust_remote_code,
    )
    if settings.target_modules == "auto":
        targets = find_linear_modules(model) or _DEFAULT_TARGETS
    else:
        targets = settings.target_modules
    model = FastLanguageModel.get_peft_model(
        model,
        r=settings.rank,
        target_modules=targets,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        bias="none",
        use_gradient_checkpointing="unsloth" if settings.gradient_checkpointing else False,
        random_state=settings.seed,
    )
    return model, tokenizer, next(model.parameters()).device
