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


def cuda_dtype() -> str:
    """The dtype a base model is loaded in on CUDA: bf16 where the GPU has it, else fp16."""
    import torch

    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def cpu_bf16_units() -> list[str]:
    """This CPU's bfloat16 matrix instructions ("amx_bf16", "avx512_bf16"); empty when it has none.

    torch's own capability list where it has one (torch >= 2.7), else the flags of Linux's /proc/cpuinfo.
    """
    import torch

    wanted = ("amx_bf16", "avx512_bf16")
    capabilities = getattr(torch.cpu, "get_capabilities", None)
    if capabilities is not None:
        found = capabilities()
        return [name for name in wanted if found.get(name)]
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        flags = []
    return [name for name in wanted if name in flags]


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


@dataclass(frozen=True)
class Precision:
    """The arithmetic of the training steps: `name` is "fp32", "bf16" or (CUDA) "fp16"; `autocast` says whether the
    steps run under CPU bf16 autocast (fp32 weights, bf16 matrix products)."""

    name: str
    autocast: bool
    reason: str

    def context(self):
        """The context the forward passes of a training step run in."""
        import contextlib

        import torch

        return torch.autocast("cpu", dtype=torch.bfloat16) if self.autocast else contextlib.nullcontext()


def choose_precision(requested: str, *, cuda_dtype: str | None, bf16_units: list[str]) -> Precision:
    """The training steps' arithmetic and why. `cuda_dtype` is the dtype a CUDA base model is loaded in ("bf16" or
    "fp16"; None without CUDA): the setting is the CPU's, a GPU trains in its loaded dtype.

    Raises Unavailable when bf16 is asked for on a CPU without bfloat16 matrix instructions (it would be emulated,
    slower than fp32).
    """
    if requested not in ("auto", "fp32", "bf16"):
        raise BadInput(f"unknown precision {requested!r}", hint="use auto, fp32 or bf16")
    if cuda_dtype is not None:
        return Precision(cuda_dtype, False, f"CUDA: the base model is loaded in {cuda_dtype} (precision is the CPU's)")
    if requested == "fp32":
        return Precision("fp32", False, "requested with precision=fp32")
    if requested == "bf16":
        if not bf16_units:
            raise Unavailable(
                "train.precision=bf16: this CPU has no bfloat16 matrix instructions (AMX-BF16 or AVX512-BF16), so "
                "bf16 would be emulated, slower than fp32",
                hint="set precision to auto or fp32 (--set precision=fp32), or train on a CPU with AMX or "
                "AVX512-BF16 (Intel Sapphire Rapids or later, AMD Zen 4 or later)",
            )
        return Precision("bf16", True, f"requested with precision=bf16 (this CPU has {', '.join(bf16_units)})")
    return Precision("fp32", False, "auto: fp32 on the CPU (bf16 is the user's choice: it changes the numerics)")


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
