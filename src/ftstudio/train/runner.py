"""One training run, start to finish: data → pre-flight → probe → steps with checkpoints → adapter → eval report.

The loop is our own (about a page) rather than HF Trainer's: it packs examples, counts real tokens, checkpoints
atomically, stops cleanly on cancel or a non-finite loss, and runs unchanged under `accelerate launch` / torchrun
(data parallel: each process takes its share of every global batch, gradients are summed across processes).

`train` is the recipe: `setup` (checks, processes, backend, model, data, batch plan) → `probe` (train/probe.py)
→ `open_run` (optimizer, checkpoint to resume, run.json) → `run_steps` (steps from train/loop.py, metrics, eval,
checkpoints, cancel) → `finish` (adapter, base-vs-tuned comparison, report card, completed). The run's state on
disk is its `RunRecord` (train/runs.py), changed only through its transitions.
"""

from __future__ import annotations

import json
import os
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
from ftstudio.train import backends, distributed, sharding
from ftstudio.train.checkpoints import load_checkpoint, save_checkpoint
from ftstudio.train.evaluate import compare, eval_loss
from ftstudio.train.formatting import _NO_DATA_HINT, Formatter, end_of_turn_ids, prepare
from ftstudio.train.loop import BatchPlan, Diverged, Training, new_optimizer, train_step
from ftstudio.train.probe import probe
from ftstudio.train.runs import Run, RunRecord, load_run, new_run_id, now_iso
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


def resolve_base_model(project: Project, run: Run | None = None, chosen: str | None = None) -> str:
    """The base model to train: the run's when resuming, else `chosen` or the project's; BadInput when none is set."""
    chosen = chosen or project.settings().base_model.model
    if run is not None:
        if chosen and chosen != run.base_model:
            raise BadInput(
                f"run {run.id} was trained on {run.base_model!r}, but the project's base model is {chosen!r}",
                hint="resume with the same base model (set it back with --base-model), or start a new run",
            )
        return run.base_model
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
    resuming = load_run(project, resume) if resume else None
    if resuming is not None and resuming.status == "completed":
        raise BadInput(f"run {resuming.id} is already completed", hint="start a new run with `ftstudio train NAME`")
    t = setup(project, settings, resuming, base_model, progress, on_ready)
    found = None
    if (t.settings.probe_steps or probe_only) and resuming is None:
        found = probe(t, max(1, t.settings.probe_steps))
    if probe_only:
        return TrainResult(None, None, "probed", t.backend.backend, t.backend.reason, 0, t.plan.total_steps,
                           probe=found, warnings=t.data.warnings)  # fmt: skip
    run = open_run(project, t, resuming, found)
    if run_steps(t, run, cancel) == "stopped":
        return _result(run, t.data.warnings, found)
    return finish(project, t, run, found)


def setup(
    project: Project,
    settings: TrainSettings,
    resuming: Run | None,
    new_base: str | None,
    progress: ProgressFn | None,
    on_ready: Callable[[str], None] | None,
) -> Training:
    """Check everything that can be checked cheaply, then join the processes, choose the backend, load the model
    and prepare the data into this process's batch plan."""
    if resuming is not None:
        settings = resuming.record.train_settings()
    base_model = resolve_base_model(project, resuming, new_base)
    trust = project.settings().base_model.trust_remote_code
    examples, left_out = _trainable(project, _read_examples(project), settings.only_accepted)
    # The base-model checks again, with this run's method and sizes: a model that cannot train here fails now,
    # not after minutes of loading.
    checked = check_model(
        base_model, trust_remote_code=trust, seq_len=settings.max_seq_length, batch=settings.batch_size,
        method=settings.method, lora_rank=settings.rank, progress=progress,
    )  # fmt: skip
    checked.raise_for_error("cannot train")
    import torch  # after the cheap checks, so bad input is refused fast

    procs = distributed.join()
    if resuming is not None:
        settings = _same_global_batch(settings, resuming, procs.world)
    progress = progress if procs.main else None
    cuda = backends.cuda_available()
    choice = backends.choose_backend(settings.backend, cuda=cuda, unsloth=backends.unsloth_installed())
    if settings.method == "qlora" and not cuda:
        from ftstudio.errors import Unavailable

        raise Unavailable(
            "QLoRA (a 4-bit NF4 base) needs a CUDA GPU and none is visible",
            hint="use --method lora (runs on the CPU, slowly), or a machine with an NVIDIA GPU",
        )
    precision = backends.choose_precision(
        settings.precision, cuda_dtype=backends.cuda_dtype() if cuda else None, bf16_units=backends.cpu_bf16_units()
    )
    sharding.check_supported(procs.shard, choice.backend)
    if new_base:  # a folder or a GGUF file as its absolute path, as the project stores it
        base_model = checked.model if checked.info.get("source") in ("folder", "gguf") else new_base
    # A GGUF spec trains from its imported folder (cached by the check above); the run records the spec.
    weights = checked.info["folder"] if checked.info.get("source") in ("gguf", "ollama") else base_model
    if on_ready is not None and procs.main:
        on_ready(base_model)
    report(progress, "load", message=f"loading {base_model} ({choice.backend})")
    torch.manual_seed(settings.seed)
    model, tokenizer, device = backends.load(weights, settings, choice.backend, trust_remote_code=trust)
    if procs.shard == "fsdp":
        units = sharding.shard_base_model(model, procs.world)
        report(progress, "load", message=f"base model sharded over {procs.world} processes ({units} FSDP units)")
    formatter = Formatter.create(tokenizer, settings.system_prompt, end_of_turn_ids(weights, tokenizer))
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
    plan = BatchPlan.make(settings, data, backend=choice.backend, device=device, pad_id=pad_id, procs=procs)
    params = [p for p in model.parameters() if p.requires_grad]
    return Training(settings, base_model, choice, procs, progress, model, tokenizer, formatter, device, data, params,
                    plan, precision)  # fmt: skip


def open_run(project: Project, t: Training, resuming: Run | None, found_probe: dict | None) -> Run:
    """Make the optimizer and the run: a new run folder, or the resumed run at its last checkpoint; run.json says
    it is running."""
    t.optimizer, t.scheduler = new_optimizer(t)
    main = t.procs.main
    if resuming is not None:
        checkpoints = resuming.checkpoints()
        if not checkpoints:
            raise BadInput(f"run {resuming.id} has no complete checkpoint to resume from", hint="start a new run")
        state = load_checkpoint(checkpoints[-1], t.model, t.optimizer, t.scheduler)
        t.start_step = state["step"]
        run = resuming
        if main:
            _truncate_metrics(run.metrics_path, t.start_step)
        report(t.progress, "resume", t.start_step, t.plan.total_steps,
               f"resuming {run.id} from step {t.start_step}")  # fmt: skip
    else:
        run_id = t.procs.broadcast(new_run_id() if main else None)
        data = t.data
        record = RunRecord(
            id=run_id, base_model=t.base_model, method=t.settings.method, backend=t.backend.backend,
            backend_reason=t.backend.reason, precision=t.precision.name, precision_reason=t.precision.reason,
            settings=t.settings.model_dump(mode="json"), started_at=now_iso(),
            examples={"train": len(data.train), "eval": len(data.eval), "truncated": data.truncated,
                      "dropped": data.dropped},
            warnings=data.warnings, probe=found_probe, device=str(t.device), world_size=t.procs.world,
            sharding=t.procs.shard, trainable_parameters=sum(p.numel() for p in t.params),
            total_steps=t.plan.total_steps,
        )  # fmt: skip
        run = Run(run_id, project.runs_dir / run_id, record)
    run.record.running(t.start_step)
    if main:
        run.path.mkdir(parents=True, exist_ok=True)
        run.save()
    return run


def run_steps(t: Training, run: Run, cancel: threading.Event | None) -> str:
    """Train from the start step to the last: metrics, held-out loss, checkpoints; "stopped" when cancelled (a
    checkpoint saved), else "done". A NaN/inf loss fails the run with BadInput; any other exception fails it too
    and is raised again."""
    s, plan, procs, record = t.settings, t.plan, t.procs, run.record
    main, total_steps = procs.main, plan.total_steps
    eval_options = plan.eval_options()
    t.model.train()
    step, window_tokens, window_start = t.start_step, 0.0, time.perf_counter()
    report(t.progress, "start", step, total_steps, f"training {len(t.data.train)} examples for {total_steps} steps")
    try:
        while step < total_steps:
            last = train_step(t, step, t.optimizer, t.scheduler)
            step += 1
            window_tokens += last["tokens"]
            record.stepped(step, last["loss"])
            if main and (step % s.log_every == 0 or step == total_steps):
                elapsed = time.perf_counter() - window_start
                metric = {
                    "step": step,
                    "epoch": round(step / plan.steps_per_epoch, 4),
                    "loss": round(last["loss"], 6),
                    "learning_rate": last["learning_rate"],
                    "grad_norm": round(last["grad_norm"], 6),
                    "tokens_per_second": round(window_tokens / elapsed, 1) if elapsed > 0 else None,
                }
                _append_metric(run.path, metric)
                window_tokens, window_start = 0.0, time.perf_counter()
                report(t.progress, "train", step, total_steps, f"loss {last['loss']:.4f}", **metric)
            if t.data.eval and (step % s.eval_every == 0 or step == total_steps):
                value = eval_loss(t.model, t.data.eval, **eval_options)
                record.final_eval_loss = round(value, 6)
                if main:
                    _append_metric(run.path, {"step": step, "eval_loss": round(value, 6)})
                    report(t.progress, "eval", step, total_steps, f"eval loss {value:.4f}", step=step,
                           eval_loss=value)  # fmt: skip
            if step % s.save_every == 0 and step < total_steps:
                _checkpoint(t, run, step)
                if main:
                    run.save()
            if cancel is not None and procs.any(cancel.is_set()) and step < total_steps:
                _checkpoint(t, run, step)
                record.stopped()
                if main:
                    run.save()
                report(t.progress, "stopped", step, total_steps, f"stopped at step {step}; checkpoint saved")
                return "stopped"
    except Diverged as exc:
        kept = (run.checkpoints() or [None])[-1]
        record.failed(str(exc))
        if main:
            run.save()
        raise BadInput(
            f"training stopped: {exc} (learning rate {s.learning_rate})",
            hint="lower the learning rate (train.learning_rate / --learning-rate) and start a new run; "
            + (f"the last good checkpoint is kept in {kept}" if kept else "no checkpoint had been saved yet"),
        ) from exc
    except BaseException as exc:  # KeyboardInterrupt included: the run must not stay "running" forever
        record.failed(f"{type(exc).__name__}: {exc}")
        if main and run.path.exists():
            run.save()
        raise
    return "done"


def finish(project: Project, t: Training, run: Run, found_probe: dict | None) -> TrainResult:
    """Save the adapter, compare base and tuned model on the held-out split (eval.json), make the report card, and
    mark the run completed."""
    procs, record, main = t.procs, run.record, t.procs.main
    if procs.world > 1:
        lines = [n for step in range(t.start_step, t.plan.total_steps) if t.plan.in_first_epoch(step)
                 for n in t.plan.step_lines(step)]  # fmt: skip
        distributed.record_ranks(procs, run.path, lines, t.model)
    if main or procs.shard:  # a sharded model needs every process for each forward pass
        if main:
            _save_adapter(t.model, run.path)
        report(t.progress, "compare", message="comparing base and tuned model on the held-out split")
        report_data = compare(
            t.model, t.formatter, t.data.eval, t.data.eval_examples, answers=t.settings.compare_answers,
            max_new_tokens=t.settings.max_new_tokens, **t.plan.eval_options(),
        )  # fmt: skip
    if not main:
        record.completed(record.final_eval_loss)  # not written: the main process writes the run
        procs.barrier()
        return _result(run, t.data.warnings, found_probe)
    if not procs.shard:  # the card's answers are generated on one process; a sharded model would wait for the others
        from ftstudio.train.card import at_end_of_training

        card = at_end_of_training(project, run.id, t.model, t.formatter, t.progress)
        if card is not None:
            report_data["card"] = card.to_dict()
    (run.path / "eval.json").write_text(json.dumps(report_data, indent=2, ensure_ascii=False) + "\n")
    record.completed(report_data["tuned_eval_loss"])
    run.save()
    procs.barrier()
    return replace(_result(run, t.data.warnings, found_probe), eval=report_data)


def _checkpoint(t: Training, run: Run, step: int) -> None:
    if t.procs.main:
        save_checkpoint(run.path, step, t.model, t.optimizer, t.scheduler, {"run_id": run.id},
                        t.settings.keep_checkpoints)  # fmt: skip
    t.procs.barrier()


def _same_global_batch(settings: TrainSettings, run: Run, world: int) -> TrainSettings:
    """On resume under another number of processes, the per-process batch that keeps the run's global batch."""
    before = int(run.record.world_size)
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


def _result(run: Run, warnings: list[str], found_probe: dict | None) -> TrainResult:
    r = run.record
    return TrainResult(r.id, run.path, r.status, r.backend, r.backend_reason, r.steps, r.total_steps,
                       r.final_train_loss, r.final_eval_loss, found_probe, None, warnings)  # fmt: skip


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
