"""Training backends: how the base model is loaded and given its LoRA adapter. The training loop is shared.

- `transformers`: transformers + PEFT, on CPU or GPU (QLoRA through bitsandbytes on CUDA).
- `unsloth`: Unsloth's `FastLanguageModel` (its fused kernels and patched attention), CUDA only.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

from ftstudio.errors import BadInput, Unavailable
from ftstudio.train.settings import TrainSettings


def cuda_available() -> bool:
    """Whether torch sees a CUDA device (the only accelerator the 4-bit and Unsloth paths support)."""
    import torch

    return torch.cuda.is_available()


def unsloth_installed() -> bool:
    return importlib.util.find_spec("unsloth") is not None


@dataclass(frozen=True)
class Choice:
    backend: str
    reason: str


def choose_backend(requested: str, *, cuda: bool, unsloth: bool) -> Choice:
    """Which backend runs and why. Unsloth only with CUDA; `auto` prefers it there."""
    if requested == "unsloth":
        if not cuda:
            raise Unavailable(
                "--backend unsloth needs a CUDA GPU and none is visible",
                hint="use --backend transformers (runs on the CPU, slowly) or run on a machine with an NVIDIA GPU",
            )
        if not unsloth:
            raise Unavailable("--backend unsloth: the unsloth package is not installed", hint="pip install unsloth")
        return Choice("unsloth", "requested with --backend unsloth")
    if requested == "transformers":
        return Choice("transformers", "requested with --backend transformers")
    if requested != "auto":
        raise BadInput(f"unknown backend {requested!r}", hint="use auto, unsloth or transformers")
    if cuda and unsloth:
        return Choice("unsloth", "auto: CUDA is available and unsloth is installed")
    if cuda:
        return Choice("transformers", "auto: CUDA is available but unsloth is not installed (pip install unsloth)")
    return Choice("transformers", "auto: no CUDA device, so transformers + PEFT on the CPU")


def find_linear_modules(model: Any) -> list[str]:
    """Names (last component) of every linear projection in the model except the output head."""
    import torch

    names = set()
    for full, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and full.split(".")[-1] not in {"lm_head", "score", "output"}:
            names.add(full.split(".")[-1])
    return sorted(names)


def load(base_model: str, settings: TrainSettings, backend: str, *, trust_remote_code: bool = False):
    """Load the base model with a fresh LoRA adapter and its tokenizer: (peft_model, tokenizer, device)."""
    if backend == "unsloth":
        from ftstudio.train.backends.unsloth import load_unsloth

        return load_unsloth(base_model, settings, trust_remote_code=trust_remote_code)
    from ftstudio.train.backends.hf import load_transformers

    return load_transformers(base_model, settings, trust_remote_code=trust_remote_code)
