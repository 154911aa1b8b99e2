"""The fit and time probe: a few real steps before a run, measuring seconds per step and peak memory.

The steps use a throw-away optimizer, and the adapter and RNG are put back after them, so a probed run trains
exactly as an unprobed one would.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

from ftstudio.progress import report
from ftstudio.train.loop import Diverged, Training, new_optimizer, train_step


def probe(t: Training, steps: int) -> dict[str, Any]:
    """Time `steps` steps (after one untimed warm-up step), report the prediction for the run, and return it."""
    import torch
    from peft import get_peft_model_state_dict, set_peft_model_state_dict

    model, device, total_steps = t.model, t.device, t.plan.total_steps
    snapshot = {k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items()}
    rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state(device) if device.type == "cuda" else None  # dropout draws from it there
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    optimizer, scheduler = new_optimizer(t)
    times = []
    model.train()
    for s in range(steps + 1):  # the first step warms caches and allocators; it is not timed
        t0 = time.perf_counter()
        try:
            train_step(t, s, optimizer, scheduler)
        except Diverged:
            break
        times.append(time.perf_counter() - t0)
    optimizer.zero_grad(set_to_none=True)
    del optimizer, scheduler
    set_peft_model_state_dict(model, snapshot)
    torch.set_rng_state(rng)
    if cuda_rng is not None:
        torch.cuda.set_rng_state(cuda_rng, device)
    # The forecast scales the timed steps' seconds per token to the run's tokens, not their seconds per step to its
    # step count: the steps probed are full batches, while an epoch's last batch (and many short examples) are not.
    first = 1 if len(times) > 1 else 0
    timed_tokens = sum(t.plan.step_tokens(s) for s in range(first, len(times)))
    run_tokens = sum(t.plan.step_tokens(s) for s in range(total_steps))
    predicted = sum(times[first:]) / timed_tokens * run_tokens if times and timed_tokens else math.nan
    per_step = predicted / total_steps  # the run's average step
    peak_mb = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else peak_rss_mb()
    found = {
        "steps": len(times),
        "seconds_per_step": round(per_step, 4),
        "peak_memory_mb": round(peak_mb, 1),
        "memory_kind": "cuda_allocated" if device.type == "cuda" else "process_rss",
        "predicted_total_s": round(predicted, 1),
        "total_steps": total_steps,
    }
    report(
        t.progress,
        "probe",
        message=f"{found['seconds_per_step']:.2f} s/step, peak memory {found['peak_memory_mb']:.0f} MB, "
        f"about {_duration(found['predicted_total_s'])} for {total_steps} steps",
        **found,
    )
    return found


def peak_rss_mb() -> float:
    """This process's peak resident memory, in MiB.

    Linux's VmHWM where /proc has it: ru_maxrss also counts the parent's memory when this process was started by
    fork+exec from a larger one (the kernel keeps the pre-exec high-water mark), so a small child of a big
    process would report the parent's size. ru_maxrss elsewhere (kilobytes, bytes on macOS).
    """
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    import resource

    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / 2**20 if sys.platform == "darwin" else maxrss / 1024


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "unknown time"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
