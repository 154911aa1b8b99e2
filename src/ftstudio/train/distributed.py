"""The processes training together when torchrun / `accelerate launch` start ftstudio (data parallel).

The launchers set WORLD_SIZE, RANK, MASTER_ADDR and MASTER_PORT; one process (WORLD_SIZE unset or 1) is the plain
case, and every collective below is then a no-op, so the loop reads the same either way.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ftstudio.train import sharding


@dataclass(frozen=True)
class Processes:
    """This process's place among those training together; `shard` is 'fsdp' or 'deepspeed' when accelerate
    launched them with such a config (see ftstudio.train.sharding)."""

    rank: int = 0
    world: int = 1
    shard: str | None = None

    @property
    def main(self) -> bool:
        """The process that writes the run and reports progress."""
        return self.rank == 0

    def all_reduce(self, tensor) -> None:
        """Sum `tensor` in place over every process."""
        if self.world > 1:
            import torch.distributed as dist

            dist.all_reduce(tensor)

    def any(self, flag: bool) -> bool:
        """True on every process when `flag` is true on one."""
        if self.world <= 1:
            return flag
        import torch

        t = torch.tensor([1.0 if flag else 0.0])
        self.all_reduce(t)
        return bool(t.item() > 0)

    def broadcast(self, value):
        """The main process's `value`, on every process."""
        if self.world <= 1:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()


def join() -> Processes:
    """Join the launcher's process group (gloo on the CPU, nccl on CUDA); one plain process when not launched."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Processes()
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if cuda else "gloo")
    world = dist.get_world_size()
    return Processes(dist.get_rank(), world, sharding.requested() if world > 1 else None)


def record_ranks(procs: Processes, run_dir: Path, lines_seen: list[int], model) -> None:
    """distributed.json: per process, the data lines it trained on in the first epoch and a digest of its adapter."""
    import hashlib

    import torch.distributed as dist
    from peft import get_peft_model_state_dict

    digest = hashlib.sha256()
    for name, tensor in sorted(get_peft_model_state_dict(model).items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().float().numpy().tobytes())
    local = sum(getattr(p, "to_local", lambda p=p: p)().numel() for p in model.parameters() if not p.requires_grad)
    mine = {"rank": procs.rank, "lines_first_epoch": sorted(set(lines_seen)), "adapter_sha256": digest.hexdigest(),
            "frozen_parameters_held": local}  # fmt: skip
    everyone = [None] * procs.world
    dist.all_gather_object(everyone, mine)
    if procs.main:
        (run_dir / "distributed.json").write_text(json.dumps({"world_size": procs.world, "ranks": everyone}, indent=2))
