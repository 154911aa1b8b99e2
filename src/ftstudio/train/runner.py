"""One training run, start to finish: data → pre-flight → probe → steps with checkpoints → adapter → eval report.

The loop is our own (about a page) rather than HF Trainer's: it packs examples, counts real tokens, checkpoints
atomically, stops cleanly on cancel or a non-finite loss, and runs unchanged under `accelerate launch` / torchrun
(data parallel: each process takes its share of every global batch, gradients are summed across processes).
"""

from __future__ import annotations

import json
import math
import os
import resource
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ftstudio.basemodels.checks import check_model
from ftstudio.dataset import read_dataset
from ftstudio.errors import BadInput
from ftstudio.progress import ProgressFn, report
from ftstudio.project import Project
from ftstudio.train import backends, sharding
from ftstudio.train.batching import collate, plan_epoch
from ftstudio.train.checkpoints import load_checkpoint, save_checkpoint
from ftstudio.train.evaluate import compare, eval_loss
from ftstudio.train.formatting import _NO_DATA_HINT, Formatter, end_of_turn_ids, prepare
from ftstudio.train.runs import Run, load_run, new_run_id, now_iso, write_run_info
from ftstudio.train.settings import TrainSettings


@dataclass(frozen=True)
class TrainResult:
    """What a run produced. `status`: completed, stopped (cancelled; resumable), failed, or probed (probe only)."""

    run_id: str | None
    run_dir: Path | None
    status: str
    backend: str
    backend_reason: str
    steps: int
    total_steps: int
    final_train_loss: float | None = None
    final_eval_loss: float | None = None
    probe: dict[str, Any] | None = None
    eval: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["run_dir"] = str(self.run_dir) if self.run_dir else None
        data["adapter"] = str(self.run_dir / "adapter") if self.run_dir and self.status == "completed" else None
        return data


class _Diverged(Exception):
    pass


def resolve_base_model(project: Project, run: Run | None = None, chosen: str | None = None) -> str:
    """The base model to train: the run's when resuming, else `chosen` or the project's; BadInput when none is set."""
    chosen = chosen or project.settings().base_model.model
    if run is not None:
        if chosen and chosen != run.info.get("base_model"):
            raise BadInput(
                f"run {run.id} was trained on {run.info.get('base_model')!r}, but the project's base model is "
                f"{chosen!r}",
                hint="resume with the same base model (set it back with --base-model), or start a new run",
            )
        return run.info["base_model"]
    if not chosen:
        raise BadInput(
            "no base model is set for this project",
            hint="pass --base-model HUB_ID_OR_FOLDER (saved in project.toml), or choose one in the Base model tab",
        )
    return chosen


def train(
    project: Project,
    settings: TrainSettings,
    *,
    resume: str | None = None,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    probe_only: bool = False,
    base_model: str | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train a LoRA/QLoRA adapter on the project's data; see the module docstring and docs/train.md.

    `base_model` replaces the project's for this run. `on_ready(model)` is called once every check has passed,
    before the model loads, with the base model as the project should store it (a folder as its absolute path):
    the faces save the run's settings there when asked to (`--save`), so a refused run changes nothing.

    Raises BadInput (no data, bad lines, pre-flight refusal, a run to resume that is missing or of another base
    model, a loss that became NaN/inf), Unavailable (QLoRA or Unsloth without CUDA).
    """
    run = load_run(project, resume) if resume else None
    if run is not None:
        if run.status == "completed":
            raise BadInput(f"run {run.id} is already completed", hint="start a new run with `ftstudio train NAME`")
        settings = TrainSettings.model_validate(run.info["settings"])
    new_base = base_model
    base_model = resolve_base_model(project, run, new_base)
    trust = project.settings().base_model.trust_remote_code
    examples, left_out = _trainable(project, _read_examples(project), settings.only_accepted)
    # The base-model checks again, with this run's method and sizes: a model that cannot train here fails now,
    # not after minutes of loading.
    checked = check_model(
        base_model, trust_remote_code=trust, seq_len=settings.max_seq_length, batch=settings.batch_size,
        method=settings.method, lora_rank=settings.rank,
    )  # fmt: skip
    checked.raise_for_error("cannot train")
    import torch  # after the cheap checks, so bad input is refused fast

    rank, world = _init_distributed()
    main = rank == 0
    if run is not None:
        settings = _same_global_batch(settings, run, world)
    progress = progress if main else None
    cuda = backends.cuda_available()
    choice = backends.choose_backend(settings.backend, cuda=cuda, unsloth=backends.unsloth_installed())
    if settings.method == "qlora" and not cuda:
        from ftstudio.errors import Unavailable

        raise Unavailable(
            "QLoRA (a 4-bit NF4 base) needs a CUDA GPU and none is visible",
            hint="use --method lora (runs on the CPU, slowly), or a machine with an NVIDIA GPU",
        )
    shard = sharding.requested() if world > 1 else None
    sharding.check_supported(shard, choice.backend)
    if new_base:  # a folder as its absolute path, as the project stores it
        base_model = str(checked.info["folder"]) if checked.info.get("source") == "folder" else new_base
    if on_ready is not None and main:
        on_ready(base_model)
    report(progress, "load", message=f"loading {base_model} ({choice.backend})")
    torch.manual_seed(settings.seed)
    model, tokenizer, device = backends.load(base_model, settings, choice.backend, trust_remote_code=trust)
    if shard == "fsdp":
        units = sharding.shard_base_model(model, world)
        report(progress, "load", message=f"base model sharded over {world} processes ({units} FSDP units)")
    formatter = Formatter.create(tokenizer, settings.system_prompt, end_of_turn_ids(base_model, tokenizer))
    data = prepare(
        formatter,
        examples,
        max_length=settings.max_seq_length,
        too_long=settings.too_long,
        eval_fraction=settings.eval_fraction,
        seed=settings.seed,
    )
    data.warnings[:0] = left_out
    for warning in data.warnings:
        report(progress, "preflight", message=warning)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    pack = settings.packing and choice.backend == "transformers"
    capacity = min(settings.pack_length, settings.max_seq_length)
    # On the CPU a row of a few hundred tokens already fills the matrix units; more rows per pass only add memory.
    rows_per_pass = settings.rows_per_pass or (1 if device.type == "cpu" and pack else None)
    lengths = [len(e) for e in data.train]
    global_batch = settings.batch_size * world
    micro_per_epoch = math.ceil(len(data.train) / global_batch)
    steps_per_epoch = max(1, math.ceil(micro_per_epoch / settings.grad_accumulation))
    total_steps = settings.max_steps or max(1, math.ceil(settings.epochs * steps_per_epoch))
    plans: dict[int, list[list[int]]] = {}

    def micro_batch(index: int):
        epoch, k = divmod(index, micro_per_epoch)
        if epoch not in plans:
            plans.clear()
            plans[epoch] = plan_epoch(lengths, global_batch, settings.seed, epoch, group_by_length=not pack)
        chosen = plans[epoch][k][rank::world]
        if not chosen:
            return None
        return collate([data.train[i] for i in chosen], pack=pack, capacity=capacity, pad_id=pad_id)

    params = [p for p in model.parameters() if p.requires_grad]

    def new_optimizer():
        from transformers import get_scheduler

        opt = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=settings.weight_decay)
        warmup = int(settings.warmup_ratio * total_steps)
        name = "constant_with_warmup" if settings.scheduler == "constant" else settings.scheduler
        return opt, get_scheduler(name, opt, num_warmup_steps=warmup, num_training_steps=total_steps)

    def step_once(step: int, optimizer, scheduler) -> dict[str, float]:
        batches = [micro_batch(step * settings.grad_accumulation + j) for j in range(settings.grad_accumulation)]
        counts = torch.tensor(
            [sum(b.labels for b in batches if b), sum(b.tokens for b in batches if b)], dtype=torch.float64
        )
        _all_reduce(counts, world)
        n_labels = counts[0].to(device)
        loss_sum = torch.zeros((), dtype=torch.float64)
        for b in batches:
            if b is None:
                continue
            for chunk in b.chunks(rows_per_pass):
                inputs = {k: t.to(device) for k, t in chunk.items()}
                out = model(**inputs, num_items_in_batch=n_labels, use_cache=False)
                out.loss.backward()
                loss_sum += out.loss.detach().double().cpu()
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            _all_reduce(p.grad, world)
        _all_reduce(loss_sum, world)
        loss = float(loss_sum)
        if not math.isfinite(loss):
            raise _Diverged(f"the loss became {loss} at step {step + 1}")
        norm = float(torch.nn.utils.clip_grad_norm_(params, settings.max_grad_norm))
        if not math.isfinite(norm):
            raise _Diverged(f"the gradient norm became {norm} at step {step + 1}")
        lr = scheduler.get_last_lr()[0]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        return {"loss": loss, "grad_norm": norm, "learning_rate": lr, "tokens": float(counts[1])}

    # Fit and time probe: a few real steps with a throw-away optimizer, then the adapter and RNG are put back, so
    # a probed run trains exactly as an unprobed one would.
    probe = None
    if (settings.probe_steps or probe_only) and run is None:
        probe = _probe(model, params, new_optimizer, step_once, max(1, settings.probe_steps), total_steps, device)
        report(
            progress,
            "probe",
            message=f"{probe['seconds_per_step']:.2f} s/step, peak memory {probe['peak_memory_mb']:.0f} MB, "
            f"about {_duration(probe['predicted_total_s'])} for {total_steps} steps",
            **probe,
        )
    if probe_only:
        return TrainResult(None, None, "probed", choice.backend, choice.reason, 0, total_steps, probe=probe,
                           warnings=data.warnings)  # fmt: skip

    optimizer, scheduler = new_optimizer()
    start_step = 0
    if run is not None:
        checkpoints = run.checkpoints()
        if not checkpoints:
            raise BadInput(f"run {run.id} has no complete checkpoint to resume from", hint="start a new run")
        state = load_checkpoint(checkpoints[-1], model, optimizer, scheduler)
        start_step = state["step"]
        run_dir, run_id, info = run.path, run.id, dict(run.info)
        if main:
            _truncate_metrics(run.metrics_path, start_step)
        report(progress, "resume", start_step, total_steps, f"resuming {run_id} from step {start_step}")
    else:
        run_id = _broadcast(new_run_id() if main else None, world)
        run_dir = project.runs_dir / run_id
        info = {
            "id": run_id,
            "base_model": base_model,
            "method": settings.method,
            "backend": choice.backend,
            "backend_reason": choice.reason,
            "settings": settings.model_dump(mode="json"),
            "started_at": now_iso(),
            "examples": {"train": len(data.train), "eval": len(data.eval), "truncated": data.truncated,
                         "dropped": data.dropped},
            "warnings": data.warnings,
            "probe": probe,
            "device": str(device),
            "world_size": world,
            "sharding": shard,
            "trainable_parameters": sum(p.numel() for p in params),
            "total_steps": total_steps,
        }  # fmt: skip
    info.update(status="running", error=None, finished_at=None, steps=start_step)
    info.setdefault("final_train_loss", None)
    info.setdefault("final_eval_loss", None)
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_run_info(run_dir, info)

    eval_kwargs = dict(batch_size=settings.batch_size, pack=pack, capacity=capacity, pad_id=pad_id)
    model.train()
    step, window_tokens, window_start, last = start_step, 0.0, time.perf_counter(), None
    lines_seen: list[int] = []

    def save(at: int) -> None:
        if main:
            save_checkpoint(run_dir, at, model, optimizer, scheduler, {"run_id": run_id}, settings.keep_checkpoints)
        _barrier(world)

    report(progress, "start", step, total_steps, f"training {len(data.train)} examples for {total_steps} steps")
    try:
        while step < total_steps:
            if world > 1 and step * settings.grad_accumulation < micro_per_epoch:
                lines_seen += _lines_of(micro_batch, step, settings.grad_accumulation)
            last = step_once(step, optimizer, scheduler)
            step += 1
            window_tokens += last["tokens"]
            info.update(steps=step, final_train_loss=round(last["loss"], 6))
            if main and (step % settings.log_every == 0 or step == total_steps):
                elapsed = time.perf_counter() - window_start
                record = {
                    "step": step,
                    "epoch": round(step / steps_per_epoch, 4),
                    "loss": round(last["loss"], 6),
                    "learning_rate": last["learning_rate"],
                    "grad_norm": round(last["grad_norm"], 6),
                    "tokens_per_second": round(window_tokens / elapsed, 1) if elapsed > 0 else None,
                }
                _append_metric(run_dir, record)
                window_tokens, window_start = 0.0, time.perf_counter()
                report(progress, "train", step, total_steps, f"loss {last['loss']:.4f}", **record)
            if data.eval and (step % settings.eval_every == 0 or step == total_steps):
                value = eval_loss(model, data.eval, **eval_kwargs)
                info["final_eval_loss"] = round(value, 6)
                if main:
                    _append_metric(run_dir, {"step": step, "eval_loss": round(value, 6)})
                    report(progress, "eval", step, total_steps, f"eval loss {value:.4f}", step=step, eval_loss=value)
            if step % settings.save_every == 0 and step < total_steps:
                save(step)
                if main:
                    write_run_info(run_dir, info)
            if cancel is not None and _any_rank(cancel.is_set(), world) and step < total_steps:
                save(step)
                info.update(status="stopped", finished_at=now_iso())
                if main:
                    write_run_info(run_dir, info)
                report(progress, "stopped", step, total_steps, f"stopped at step {step}; checkpoint saved")
                return _result(info, run_dir, data.warnings, probe)
    except _Diverged as exc:
        kept = (Run(run_id, run_dir, info).checkpoints() or [None])[-1]
        info.update(status="failed", error=str(exc), finished_at=now_iso())
        if main:
            write_run_info(run_dir, info)
        raise BadInput(
            f"training stopped: {exc} (learning rate {settings.learning_rate})",
            hint="lower the learning rate (train.learning_rate / --learning-rate) and start a new run; "
            + (f"the last good checkpoint is kept in {kept}" if kept else "no checkpoint had been saved yet"),
        ) from exc
    except BaseException as exc:  # KeyboardInterrupt included: the run must not stay "running" forever
        info.update(status="failed", error=f"{type(exc).__name__}: {exc}", finished_at=now_iso())
        if main and run_dir.exists():
            write_run_info(run_dir, info)
        raise

    if world > 1:
        _record_ranks(run_dir, rank, world, lines_seen, model)
    if main or shard:  # a sharded model needs every process for each forward pass
        if main:
            _save_adapter(model, run_dir)
        report(progress, "compare", message="comparing base and tuned model on the held-out split")
        report_data = compare(
            model, formatter, data.eval, data.eval_examples, answers=settings.compare_answers,
            max_new_tokens=settings.max_new_tokens, **eval_kwargs,
        )  # fmt: skip
    if main:
        if not shard:  # the card's answers are generated on one process; a sharded model would wait for the others
            from ftstudio.train.card import at_end_of_training

            card = at_end_of_training(project, run_id, model, formatter, progress)
            if card is not None:
                report_data["card"] = card.to_dict()
        (run_dir / "eval.json").write_text(json.dumps(report_data, indent=2, ensure_ascii=False) + "\n")
        info.update(status="completed", finished_at=now_iso(), final_eval_loss=report_data["tuned_eval_loss"])
        write_run_info(run_dir, info)
        result = replace(_result(info, run_dir, data.warnings, probe), eval=report_data)
    else:
        info.update(status="completed")
        result = _result(info, run_dir, data.warnings, probe)
    _barrier(world)
    return result


def _same_global_batch(settings: TrainSettings, run: Run, world: int) -> TrainSettings:
    """On resume under another number of processes, the per-process batch that keeps the run's global batch."""
    before = int(run.info.get("world_size", 1))
    if before == world:
        return settings
    global_batch = settings.batch_size * before
    if global_batch % world:
        raise BadInput(
            f"run {run.id} trained {global_batch} examples per step on {before} process(es); {world} processes "
            "cannot share that evenly",
            hint=f"resume with a number of processes that divides {global_batch}",
        )
    return settings.model_copy(update={"batch_size": global_batch // world})


def _read_examples(project: Project):
    dataset = read_dataset(project.sft_data)
    if dataset.errors:
        listed = "\n  ".join(str(e) for e in dataset.errors[:10])
        raise BadInput(
            f"{project.sft_data}: {len(dataset.errors)} bad line(s):\n  {listed}",
            hint="fix or remove those lines (`ftstudio data NAME` lists them all)",
        )
    if not dataset.examples:
        raise BadInput(f"{project.sft_data} has no examples", hint=_NO_DATA_HINT)
    return dataset.examples


def _trainable(project: Project, examples, only_accepted: bool):
    """The examples to train on (review decisions and the eval set applied) and notes on what was left out."""
    from ftstudio.synth import evalset, review

    eval_questions = evalset.questions_of(project)
    kept, notes = review.for_training(examples, only_accepted=only_accepted, eval_questions=eval_questions)
    if not kept:
        raise BadInput(
            f"{project.sft_data}: no example left to train on ({'; '.join(notes)})",
            hint="accept some pairs in review (`ftstudio data NAME --accept LINES`), or set train.only_accepted "
            "to false",
        )
    return kept, notes


def _probe(model, params, new_optimizer, step_once, steps: int, total_steps: int, device) -> dict[str, Any]:
    import torch
    from peft import get_peft_model_state_dict, set_peft_model_state_dict

    snapshot = {k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items()}
    rng = torch.get_rng_state()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    optimizer, scheduler = new_optimizer()
    times = []
    model.train()
    for s in range(steps + 1):  # the first step warms caches and allocators; it is not timed
        t0 = time.perf_counter()
        try:
            step_once(s, optimizer, scheduler)
        except _Diverged:
            break
        times.append(time.perf_counter() - t0)
    optimizer.zero_grad(set_to_none=True)
    del optimizer, scheduler
    set_peft_model_state_dict(model, snapshot)
    torch.set_rng_state(rng)
    timed = times[1:] or times
    per_step = sum(timed) / len(timed) if timed else math.nan
    if device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {
        "steps": len(times),
        "seconds_per_step": round(per_step, 4),
        "peak_memory_mb": round(peak_mb, 1),
        "memory_kind": "cuda_allocated" if device.type == "cuda" else "process_rss",
        "predicted_total_s": round(per_step * total_steps, 1),
        "total_steps": total_steps,
    }


def _result(info: dict, run_dir: Path, warnings: list[str], probe) -> TrainResult:
    return TrainResult(
        info["id"], run_dir, info["status"], info["backend"], info["backend_reason"], info["steps"],
        info["total_steps"], info.get("final_train_loss"), info.get("final_eval_loss"), probe, None, warnings,
    )  # fmt: skip


def _append_metric(run_dir: Path, record: dict) -> None:
    with open(run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def _truncate_metrics(path: Path, step: int) -> None:
    """On resume, drop metrics logged after the checkpoint: those steps are trained again."""
    if not path.is_file():
        return
    kept = [line for line in path.read_text(encoding="utf-8").splitlines() if line and json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


def _save_adapter(model, run_dir: Path) -> None:
    tmp, final = run_dir / ".adapter.tmp", run_dir / "adapter"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "unknown time"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


# --- data parallel (torchrun / accelerate launch set WORLD_SIZE, RANK, MASTER_ADDR, MASTER_PORT) ---------------


def _init_distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if cuda else "gloo")
    return dist.get_rank(), dist.get_world_size()


def _all_reduce(tensor, world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.all_reduce(tensor)


def _any_rank(flag: bool, world: int) -> bool:
    if world <= 1:
        return flag
    import torch

    t = torch.tensor([1.0 if flag else 0.0])
    _all_reduce(t, world)
    return bool(t.item() > 0)


def _broadcast(value, world: int):
    if world <= 1:
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


def _lines_of(micro_batch, step: int, accumulation: int) -> list[int]:
    lines = []
    for j in range(accumulation):
        batch = micro_batch(step * accumulation + j)
        lines += batch.lines if batch else []
    return lines


def _record_ranks(run_dir: Path, rank: int, world: int, lines_seen: list[int], model) -> None:
    """distributed.json: per process, the data lines it trained on in the first epoch and a digest of its adapter."""
    import hashlib

    import torch.distributed as dist
    from peft import get_peft_model_state_dict

    digest = hashlib.sha256()
    for name, tensor in sorted(get_peft_model_state_dict(model).items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().float().numpy().tobytes())
    local = sum(getattr(p, "to_local", lambda p=p: p)().numel() for p in model.parameters() if not p.requires_grad)
    mine = {"rank": rank, "lines_first_epoch": sorted(set(lines_seen)), "adapter_sha256": digest.hexdigest(),
            "frozen_parameters_held": local}  # fmt: skip
    everyone = [None] * world
    dist.all_gather_object(everyone, mine)
    if rank == 0:
        (run_dir / "distributed.json").write_text(json.dumps({"world_size": world, "ranks": everyone}, indent=2))
