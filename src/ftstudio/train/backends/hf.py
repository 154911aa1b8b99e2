"""The transformers + PEFT backend: any device, LoRA on a 16/32-bit base or QLoRA on a 4-bit NF4 base (CUDA)."""

from __future__ import annotations

from typing import Any

from ftstudio.errors import BadInput, Unavailable
from ftstudio.train.backends import cuda_available, find_linear_modules
from ftstudio.train.settings import TrainSettings


def load_tokenizer(base_model: str, *, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(base_model, trust_remote_code=trust_remote_code)
    except OSError as exc:
        raise BadInput(
            f"cannot load the tokenizer of base model {base_model!r}: {exc}",
            hint="give a local model folder or a hub id already in the Hugging Face cache (--base-model)",
        ) from exc


def load_base(base_model: str, *, four_bit: bool, trust_remote_code: bool = False, for_training: bool = True):
    """The base model on the best device: CUDA in bf16 (or fp16), else the CPU in fp32."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from ftstudio.families import for_config

    cuda = cuda_available()
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code, "use_safetensors": True}
    if cuda:
        kwargs["dtype"] = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        kwargs["device_map"] = {"": torch.cuda.current_device()}
    else:
        kwargs["dtype"] = torch.float32
    if four_bit:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=kwargs["dtype"],
        )
    try:
        config = AutoConfig.from_pretrained(base_model, trust_remote_code=trust_remote_code)
        family = for_config(config.to_dict())
        attention = family.attn_implementation if family else "sdpa"
        model = AutoModelForCausalLM.from_pretrained(base_model, attn_implementation=attention, **kwargs)
    except OSError as exc:
        raise BadInput(
            f"cannot load base model {base_model!r}: {exc}",
            hint="give a local model folder with safetensors weights, or a hub id already downloaded (--base-model)",
        ) from exc
    model.config.use_cache = not for_training
    return model


def load_transformers(base_model: str, settings: TrainSettings, *, trust_remote_code: bool = False):
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    four_bit = settings.method == "qlora" or is_prequantized_4bit(base_model)
    if four_bit and not cuda_available():
        raise Unavailable(
            "QLoRA (a 4-bit base model) needs a CUDA GPU and none is visible",
            hint="train with --method lora on a 16/32-bit base model (works on the CPU), or use a machine with a GPU",
        )
    tokenizer = load_tokenizer(base_model, trust_remote_code=trust_remote_code)
    model = load_base(base_model, four_bit=four_bit, trust_remote_code=trust_remote_code)
    if four_bit:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=settings.gradient_checkpointing)
    elif settings.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    targets = find_linear_modules(model) if settings.target_modules == "auto" else settings.target_modules
    torch.manual_seed(settings.seed)  # the adapter's initial weights follow the run's seed
    config = LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=targets,
        bias="none",
        task_type="CAUSAL_LM",
    )
    try:
        model = get_peft_model(model, config)
    except ValueError as exc:
        raise BadInput(
            f"train.target_modules={settings.target_modules!r}: {exc}",
            hint=f"use 'auto' or names from this model: {', '.join(find_linear_modules(model))}",
        ) from exc
    return model, tokenizer, next(model.parameters()).device


def is_prequantized_4bit(base_model: str) -> bool:
    """Whether a local model folder's config says its weights are 4-bit (bitsandbytes), like `…-bnb-4bit` repos."""
    import json
    from pathlib import Path

    config = Path(base_model) / "config.json"
    if not config.is_file():
        return False
    quant = json.loads(config.read_text(encoding="utf-8")).get("quantization_config") or {}
    return bool(quant.get("load_in_4bit"))
