"""Batches without compute on padding: examples packed into rows, or grouped by length and padded.

Packing puts several examples in one row and restarts `position_ids` at each one. With no attention mask,
transformers (5.x) reads those restarts as sequence boundaries and builds a block-diagonal causal mask, so packed
examples never attend to each other (sdpa, eager and flash attention alike). The loss is a sum over trained tokens
divided by their count, so a packed batch gives the same loss as the same examples padded.

The data order is a pure function of (seed, epoch): a resumed run sees exactly the batches it would have seen.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from ftstudio.train.formatting import IGNORE, Encoded


def plan_epoch(
    lengths: Sequence[int], batch_size: int, seed: int, epoch: int, group_by_length: bool
) -> list[list[int]]:
    """The epoch's batches as lists of example indices; the last batch may be short."""
    order = list(range(len(lengths)))
    rng = random.Random(seed * 1_000_003 + epoch)
    rng.shuffle(order)
    if group_by_length:
        # Sort within mega-batches, as HF's LengthGroupedSampler does: similar lengths meet, order stays random.
        mega = batch_size * 50
        order = [i for k in range(0, len(order), mega) for i in sorted(order[k : k + mega], key=lambda i: -lengths[i])]
    batches = [order[k : k + batch_size] for k in range(0, len(order), batch_size)]
    if group_by_length:
        rng.shuffle(batches)
    return batches


@dataclass
class Batch:
    """Model inputs (torch tensors) plus the counts that matter: real tokens and trained tokens."""

    inputs: dict
    tokens: int
    labels: int
    lines: list[int]
    row_lengths: list[int]

    def chunks(self, rows_per_pass: int | None):
        """The inputs in slices of `rows_per_pass` rows (all at once when None), trailing padding trimmed."""
        n = len(self.row_lengths)
        step = rows_per_pass or n
        for k in range(0, n, step):
            width = max(self.row_lengths[k : k + step])
            yield {name: t[k : k + step, :width] for name, t in self.inputs.items()}


def collate(examples: Sequence[Encoded], *, pack: bool, capacity: int, pad_id: int) -> Batch:
    """Turn examples into one batch: packed rows of at most `capacity` tokens, or one padded row each."""
    import torch

    rows: list[list[Encoded]]
    if pack:
        rows = []
        room: list[int] = []
        for ex in sorted(examples, key=len, reverse=True):  # first-fit decreasing
            for r, left in enumerate(room):
                if len(ex) <= left:
                    rows[r].append(ex)
                    room[r] -= len(ex)
                    break
            else:
                rows.append([ex])
                room.append(capacity - len(ex))
    else:
        rows = [[ex] for ex in examples]
    width = max(sum(len(ex) for ex in row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        at = 0
        for ex in row:
            n = len(ex)
            ids[r, at : at + n] = torch.tensor(ex.input_ids)
            labels[r, at : at + n] = torch.tensor(ex.labels)
            labels[r, at] = IGNORE  # never predict an example's first token from the previous example
            positions[r, at : at + n] = torch.arange(n)
            mask[r, at : at + n] = 1
            at += n
        positions[r, at:] = torch.arange(width - at)  # padding is a "sequence" of its own, and never labelled
    inputs = {"input_ids": ids, "labels": labels}
    if pack:
        inputs["position_ids"] = positions
    else:
        inputs["attention_mask"] = mask
    row_lengths = [sum(len(ex) for ex in row) for row in rows]
    return Batch(inputs, int(mask.sum()), int((labels != IGNORE).sum()), [ex.line for ex in examples], row_lengths)
