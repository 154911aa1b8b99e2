"""Did it learn? Held-out loss of the base and the tuned model, and a few answers side by side."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ftstudio.dataset import Example
from ftstudio.train.batching import collate
from ftstudio.train.formatting import Encoded, Formatter


def eval_loss(model, examples: Sequence[Encoded], *, batch_size: int, pack: bool, capacity: int, pad_id: int) -> float:
    """Mean loss per trained token over `examples` (dropout off); nan when there are none."""
    import torch

    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    device = next(model.parameters()).device
    with torch.no_grad():
        for k in range(0, len(examples), batch_size):
            batch = collate(examples[k : k + batch_size], pack=pack, capacity=capacity, pad_id=pad_id)
            inputs = {name: t.to(device) for name, t in batch.inputs.items()}
            out = model(**inputs, num_items_in_batch=1, use_cache=False)  # num_items 1: the loss comes back summed
            total += float(out.loss)
            count += batch.labels
    model.train(was_training)
    return total / count if count else math.nan


def generate(model, formatter: Formatter, messages: list[dict[str, str]], max_new_tokens: int) -> str:
    """Greedy answer of `model` to a conversation ending with the user's turn."""
    import torch

    device = next(model.parameters()).device
    ids = torch.tensor([formatter.prompt_ids(messages)], device=device)
    tok = formatter.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=sorted(formatter.end_ids),
            pad_token_id=pad,
            use_cache=True,
        )
    model.train(was_training)
    return tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip()


def compare(
    model,
    formatter: Formatter,
    eval_set: Sequence[Encoded],
    eval_examples: Sequence[Example],
    *,
    answers: int,
    max_new_tokens: int,
    batch_size: int,
    pack: bool,
    capacity: int,
    pad_id: int,
) -> dict[str, Any]:
    """The eval.json report: base vs tuned loss on the held-out split, and up to `answers` answers of each."""
    kwargs = dict(batch_size=batch_size, pack=pack, capacity=capacity, pad_id=pad_id)
    tuned = eval_loss(model, eval_set, **kwargs)
    with model.disable_adapter():
        base = eval_loss(model, eval_set, **kwargs)
    side_by_side = []
    for example in list(eval_examples)[:answers]:
        messages = formatter.messages(example)[:-1]
        tuned_answer = generate(model, formatter, messages, max_new_tokens)
        with model.disable_adapter():
            base_answer = generate(model, formatter, messages, max_new_tokens)
        side_by_side.append(
            {
                "line": example.line,
                "prompt": example.prompt,
                "reference": example.answer,
                "base": base_answer,
                "tuned": tuned_answer,
            }
        )
    return {
        "examples": len(eval_set),
        "base_eval_loss": _num(base),
        "tuned_eval_loss": _num(tuned),
        "improved": bool(tuned < base) if not (math.isnan(tuned) or math.isnan(base)) else None,
        "answers": side_by_side,
    }


def _num(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 6)
