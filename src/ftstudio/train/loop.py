"""One optimizer step, and the batches each process takes for it.

Each step is `grad_accumulation` micro-batches of the global batch (batch_size × processes examples); this process
takes every `world`-th example of each. The loss is summed over trained tokens and divided by their count over
the whole step (all micro-batches and processes), so packing, batch shape, accumulation and the number of
processes do not change it; gradients are summed across processes before clipping and the optimizer step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ftstudio.progress import ProgressFn
from ftstudio.train.backends import Choice, Precision
from ftstudio.train.batching import Batch, collate, plan_epoch
from ftstudio.train.distributed import Processes
from ftstudio.train.formatting import Encoded, Formatter, Prepared
from ftstudio.train.settings import TrainSettings


class Diverged(Exception):
    """The loss or the gradient norm became NaN or infinite."""


@dataclass
class BatchPlan:
    """This process's share of every step: which examples, packed into rows or padded, and how many rows a pass."""

    examples: list[Encoded]
    lengths: list[int]
    global_batch: int
    accumulation: int
    micro_per_epoch: int
    steps_per_epoch: int
    total_steps: int
    seed: int
    pack: bool
    capacity: int
    pad_id: int
    rows_per_pass: int | None
    batch_size: int
    rank: int
    world: int
    _epoch: dict[int, list[list[int]]] = field(default_factory=dict)  # the current epoch's batches, planned once

    @classmethod
    def make(cls, settings: TrainSettings, data: Prepared, *, backend: str, device, pad_id: int,
             procs: Processes) -> BatchPlan:  # fmt: skip
        pack = settings.packing and backend == "transformers"
        # On the CPU a row of a few hundred tokens already fills the matrix units; more rows per pass only add
        # memory.
        rows_per_pass = settings.rows_per_pass or (1 if device.type == "cpu" and pack else None)
        global_batch = settings.batch_size * procs.world
        micro_per_epoch = math.ceil(len(data.train) / global_batch)
        steps_per_epoch = max(1, math.ceil(micro_per_epoch / settings.grad_accumulation))
        total_steps = settings.max_steps or max(1, math.ceil(settings.epochs * steps_per_epoch))
        return cls(
            data.train, [len(e) for e in data.train], global_batch, settings.grad_accumulation, micro_per_epoch,
            steps_per_epoch, total_steps, settings.seed, pack, min(settings.pack_length, settings.max_seq_length),
            pad_id, rows_per_pass, settings.batch_size, procs.rank, procs.world,
        )  # fmt: skip

    def _chosen(self, index: int) -> list[int]:
        """This process's examples in micro-batch `index` (counted from the run's start, across epochs)."""
        epoch, k = divmod(index, self.micro_per_epoch)
        if epoch not in self._epoch:
            self._epoch.clear()
            self._epoch[epoch] = plan_epoch(self.lengths, self.global_batch, self.seed, epoch,
                                            group_by_length=not self.pack)  # fmt: skip
        return self._epoch[epoch][k][self.rank :: self.world]

    def micro_batch(self, index: int) -> Batch | None:
        """Micro-batch `index` as this process's batch; None when the epoch's short last batch leaves it none."""
        chosen = self._chosen(index)
        if not chosen:
            return None
        return collate([self.examples[i] for i in chosen], pack=self.pack, capacity=self.capacity, pad_id=self.pad_id)

    def step_batches(self, step: int) -> list[Batch | None]:
        return [self.micro_batch(step * self.accumulation + j) for j in range(self.accumulation)]

    def step_lines(self, step: int) -> list[int]:
        """The data lines this process trains on at `step`."""
        return [self.examples[i].line for j in range(self.accumulation)
                for i in self._chosen(step * self.accumulation + j)]  # fmt: skip

    def step_tokens(self, step: int) -> int:
        """The tokens this process trains on at `step` (what a step's time grows with; a short last batch has few)."""
        return sum(self.lengths[i] for j in range(self.accumulation)
                   for i in self._chosen(step * self.accumulation + j))  # fmt: skip

    def in_first_epoch(self, step: int) -> bool:
        return step * self.accumulation < self.micro_per_epoch

    def eval_options(self) -> dict[str, Any]:
        """eval_loss's and compare's batching keywords: this run's batch size and packing."""
        return dict(batch_size=self.batch_size, pack=self.pack, capacity=self.capacity, pad_id=self.pad_id)


@dataclass
class Training:
    """What a run's stages share: the model and its data planned into batches, and, once made, the optimizer.

    `settings` are this run's (a resume's per-process batch included); `progress` is None on all but the main
    process, so only one reports.
    """

    settings: TrainSettings
    base_model: str
    backend: Choice
    procs: Processes
    progress: ProgressFn | None
    model: Any
    tokenizer: Any
    formatter: Formatter
    device: Any
    data: Prepared
    params: list
    plan: BatchPlan
    precision: Precision
    optimizer: Any = None
    scheduler: Any = None
    start_step: int = 0


def new_optimizer(t: Training):
    """AdamW over the trainable parameters and the settings' schedule with warm-up, as a pair."""
    import torch
    from transformers import get_scheduler

    s = t.settings
    opt = torch.optim.AdamW(t.params, lr=s.learning_rate, weight_decay=s.weight_decay)
    warmup = int(s.warmup_ratio * t.plan.total_steps)
    name = "constant_with_warmup" if s.scheduler == "constant" else s.scheduler
    return opt, get_scheduler(name, opt, num_warmup_steps=warmup, num_training_steps=t.plan.total_steps)


def train_step(t: Training, step: int, optimizer, scheduler) -> dict[str, float]:
    """Optimizer step `step` (from 0); its loss, gradient norm, learning rate and real tokens (all processes).

    Raises Diverged when the loss or the gradient norm is not finite; the optimizer has then not stepped.
    """
    import torch

    plan, procs, model, device = t.plan, t.procs, t.model, t.device
    batches = plan.step_batches(step)
    counts = torch.tensor(
        [sum(b.labels for b in batches if b), sum(b.tokens for b in batches if b)], dtype=torch.float64
    )
    procs.all_reduce(counts)
    n_labels = counts[0].to(device)
    loss_sum = torch.zeros((), dtype=torch.float64)
    for b in batches:
        if b is None:
            continue
        for chunk in b.chunks(plan.rows_per_pass):
            inputs = {k: v.to(device) for k, v in chunk.items()}
            with t.precision.context():  # backward follows the dtypes autocast chose in the forward pass
                out = model(**inputs, num_items_in_batch=n_labels, use_cache=False)
            out.loss.backward()
            loss_sum += out.loss.detach().double().cpu()
    for p in t.params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        procs.all_reduce(p.grad)
    procs.all_reduce(loss_sum)
    loss = float(loss_sum)
    if not math.isfinite(loss):
        raise Diverged(f"the loss became {loss} at step {step + 1}")
    norm = float(torch.nn.utils.clip_grad_norm_(t.params, t.settings.max_grad_norm))
    if not math.isfinite(norm):
        raise Diverged(f"the gradient norm became {norm} at step {step + 1}")
    lr = scheduler.get_last_lr()[0]
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return {"loss": loss, "grad_norm": norm, "learning_rate": lr, "tokens": float(counts[1])}
