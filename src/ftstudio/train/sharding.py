"""The base model sharded across processes (FSDP2) when `accelerate launch` runs ftstudio with an FSDP config.

Only the frozen base weights are sharded: each decoder layer is one FSDP unit, gathered for its forward and
backward pass and freed after. The LoRA weights are left out of FSDP (`ignored_params`): they stay whole, plain
tensors on every process, so the loop's gradient all-reduce, clipping, optimizer state and checkpoints are the same
as in data-parallel runs, and a checkpoint resumes under any number of processes. The memory that grows with the
model (its weights) is divided by the number of processes; the adapter and its optimizer state are small.
"""

from __future__ import annotations

import os

from ftstudio.errors import Unavailable


def requested() -> str | None:
    """'fsdp' or 'deepspeed' when accelerate launched this process with such a config, else None."""
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true":
        return "fsdp"
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true":
        return "deepspeed"
    return None


def check_supported(kind: str | None, backend: str) -> None:
    """Unavailable for what the loop cannot do: DeepSpeed, or FSDP with the Unsloth backend."""
    if kind == "deepspeed":
        raise Unavailable(
            "ftstudio's training loop does not drive a DeepSpeed engine (accelerate launched it with a DeepSpeed "
            "config)",
            hint="shard the base model with FSDP instead: ftstudio train NAME --write-accelerate-config fsdp, then "
            "accelerate launch --config_file THAT_FILE -m ftstudio train NAME",
        )
    if kind == "fsdp" and backend != "transformers":
        raise Unavailable(
            f"FSDP sharding works with the transformers backend, not {backend}",
            hint="add --backend transformers, or launch with the ddp config",
        )


def shard_base_model(model, world: int) -> int:
    """Shard `model`'s frozen weights over the `world` processes; returns the number of FSDP units made."""
    import torch
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh("cuda" if torch.cuda.is_available() else "cpu", (world,))
    trainable = {p for p in model.parameters() if p.requires_grad}
    layer_classes = _layer_classes(model)
    reshard = os.environ.get("FSDP_RESHARD_AFTER_FORWARD", "true").lower() != "false"
    units = 0
    for module in model.modules():
        if type(module).__name__ in layer_classes:
            fully_shard(module, mesh=mesh, reshard_after_forward=reshard,
                        ignored_params=trainable & set(module.parameters()))  # fmt: skip
            units += 1
    fully_shard(model, mesh=mesh, reshard_after_forward=reshard, ignored_params=trainable)
    return units + 1


def _layer_classes(model) -> set[str]:
    """The decoder layer class names: accelerate's FSDP_TRANSFORMER_CLS_TO_WRAP, else the model's own list."""
    named = os.environ.get("FSDP_TRANSFORMER_CLS_TO_WRAP")
    if named:
        return {n.strip() for n in named.split(",") if n.strip()}
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return set(getattr(base, "_no_split_modules", None) or [])
