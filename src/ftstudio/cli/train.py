"""`ftstudio train` and `ftstudio chat`: fine-tune the base model on the project's data, then talk to the result."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from ftstudio.cli.common import JsonOpt, RootOpt, emit, err, out, progress_bar, setting_help
from ftstudio.project import Project
from ftstudio.train.settings import TrainSettings


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("chat")(chat)


def train(
    name: Annotated[str, typer.Argument(help="Project name.")],
    base_model: Annotated[
        str | None, typer.Option(help="Hub id or local folder; saved in project.toml once the checks pass.")
    ] = None,
    method: Annotated[str | None, typer.Option(help=setting_help(TrainSettings, "method"))] = None,
    backend: Annotated[str | None, typer.Option(help=setting_help(TrainSettings, "backend"))] = None,
    epochs: Annotated[float | None, typer.Option(help=setting_help(TrainSettings, "epochs"))] = None,
    max_steps: Annotated[int | None, typer.Option(help=setting_help(TrainSettings, "max_steps"))] = None,
    learning_rate: Annotated[float | None, typer.Option(help=setting_help(TrainSettings, "learning_rate"))] = None,
    batch_size: Annotated[int | None, typer.Option(help=setting_help(TrainSettings, "batch_size"))] = None,
    max_seq_length: Annotated[int | None, typer.Option(help=setting_help(TrainSettings, "max_seq_length"))] = None,
    rank: Annotated[int | None, typer.Option(help=setting_help(TrainSettings, "rank"))] = None,
    seed: Annotated[int | None, typer.Option(help=setting_help(TrainSettings, "seed"))] = None,
    save_every: Annotated[int | None, typer.Option(help=setting_help(TrainSettings, "save_every"))] = None,
    only_accepted: Annotated[
        bool | None, typer.Option("--only-accepted/--all-pairs", help=setting_help(TrainSettings, "only_accepted"))
    ] = None,
    resume: Annotated[str | None, typer.Option(help="Continue run RUN from its last checkpoint.")] = None,
    probe_only: Annotated[
        bool, typer.Option(help="Measure memory and time per step, predict the total, stop.")
    ] = False,
    write_accelerate_config: Annotated[
        str | None,
        typer.Option(help="Write an `accelerate launch` config (ddp, fsdp, deepspeed-zero2, deepspeed-zero3) into "
                     "the project's accelerate/ folder, print the launch command, and stop.", metavar="KIND"),
    ] = None,
    processes: Annotated[int, typer.Option(help="Processes (devices) in the written accelerate config.")] = 2,
    root: RootOpt = None,
    json: JsonOpt = False,
) -> None:
    """Train a LoRA/QLoRA adapter on data/sft_data.jsonl into runs/<run-id>/ (Ctrl-C saves and stops)."""
    from pydantic import ValidationError

    from ftstudio.errors import BadInput
    from ftstudio.project import settings_errors
    from ftstudio.train.runner import train as run_training

    project = Project.open(name, root)
    if write_accelerate_config:
        return _write_accelerate_config(project, write_accelerate_config, processes, json)
    overrides = {k: v for k, v in locals().items() if k in _SETTING_OPTIONS and v is not None}
    try:
        settings = TrainSettings.model_validate({**project.settings().train.model_dump(), **overrides})
    except ValidationError as exc:
        raise BadInput(settings_errors(exc, "options"), hint="nothing was saved; correct the values") from exc
    cancel = threading.Event()
    _stop_on_ctrl_c(cancel)
    with progress_bar("training") as bar:
        result = run_training(project, settings, resume=resume, progress=_with_log(bar), cancel=cancel,
                              probe_only=probe_only, base_model=base_model)  # fmt: skip
    if os.environ.get("RANK", "0") != "0":
        return  # under torchrun / accelerate launch, the first process speaks for all
    emit(result.to_dict(), json, lambda: _print_result(result, name))
    if result.status == "stopped":
        raise typer.Exit(130)


def chat(
    name: Annotated[str, typer.Argument(help="Project name.")],
    prompt: Annotated[str, typer.Argument(help="What to ask the tuned model.")],
    run: Annotated[str | None, typer.Option(help="Run id; default: the newest completed run.")] = None,
    max_new_tokens: Annotated[int | None, typer.Option(help="Longest answer in tokens.")] = None,
    root: RootOpt = None,
    json: JsonOpt = False,
) -> None:
    """Ask the base model with a run's adapter, using its chat template; the answer streams as it is written."""
    from ftstudio.train.chat import load_chat

    model = load_chat(Project.open(name, root), run)
    pieces = []
    for piece in model.stream(prompt, max_new_tokens=max_new_tokens):
        pieces.append(piece)
        if not json:
            sys.stdout.write(piece)
            sys.stdout.flush()
    if json:
        emit({"run": model.run.id, "answer": "".join(pieces).strip()}, True)
    else:
        sys.stdout.write("\n")


_SETTING_OPTIONS = {"method", "backend", "epochs", "max_steps", "learning_rate", "batch_size", "max_seq_length",
                    "rank", "seed", "save_every", "only_accepted"}  # fmt: skip


def _write_accelerate_config(project: Project, kind: str, processes: int, as_json: bool) -> None:
    from ftstudio.train.launch_configs import accelerate_config, launch_command, write_accelerate_config

    accelerate_config(kind, processes)  # bad input is refused before anything is written
    path = write_accelerate_config(kind, project.dir / "accelerate" / f"{kind}.yaml", processes)
    command = launch_command(path, project.name)
    emit({"config": str(path), "kind": kind, "processes": processes, "command": command}, as_json,
         lambda: out.print(f"wrote {path}\nrun: {command}", markup=False))  # fmt: skip


def _stop_on_ctrl_c(cancel: threading.Event) -> None:
    """First Ctrl-C: finish the step, save a checkpoint, stop. Second: stop at once."""

    def handler(signum: int, frame: Any) -> None:
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()
        err.print("stopping after this step and saving a checkpoint (Ctrl-C again to abort)")

    signal.signal(signal.SIGINT, handler)


def _with_log(bar):
    """Progress to the bar; messages other than per-step ones also as lines (pre-flight, probe, eval)."""

    def update(event) -> None:
        bar(event)
        if event.stage not in {"train"}:
            err.print(f"[{event.stage}] {event.message}", markup=False)

    return update


def print_mask(preview) -> None:
    """One example with its trained tokens inside ⟦ ⟧ (`ftstudio data --show-mask`)."""
    from rich.text import Text

    text = Text()
    for piece, trained in preview.segments:
        text.append(f"⟦{piece}⟧" if trained else piece, style="bold green" if trained else "dim")
    out.print(f"line {preview.line}: {preview.trained_tokens} of {preview.tokens} tokens trained (inside ⟦ ⟧)"
              + (" — truncated" if preview.truncated else ""))  # fmt: skip
    out.print(text)


def _print_result(result, name: str) -> None:
    if result.status == "probed":
        p = result.probe
        out.print(f"probe: {p['seconds_per_step']:.2f} s/step, peak memory {p['peak_memory_mb']:.0f} MB; "
                  f"{p['total_steps']} steps ≈ {p['predicted_total_s']:.0f} s ({result.backend})")  # fmt: skip
        return
    out.print(f"run {result.run_id}: {result.status} after {result.steps}/{result.total_steps} steps "
              f"[{result.backend}: {result.backend_reason}]", markup=False)  # fmt: skip
    out.print(f"final train loss {result.final_train_loss}, eval loss {result.final_eval_loss}")
    if result.status == "stopped":
        out.print(f"resume with: ftstudio train {name} --resume {result.run_id}")
    if result.eval:
        e = result.eval
        out.print(f"held-out loss: base {e['base_eval_loss']} → tuned {e['tuned_eval_loss']}")
        if e.get("card"):
            from ftstudio.cli.evaluate import print_card

            print_card(e["card"])
            for warning in e["card"]["warnings"]:
                err.print(f"warning: {warning}", markup=False)
        for a in e["answers"]:
            out.print(f"\nQ (line {a['line']}): {a['prompt']}\n  reference: {a['reference']}\n"
                      f"  base:      {a['base']}\n  tuned:     {a['tuned']}", markup=False)  # fmt: skip
    if result.run_dir:
        out.print(f"\nfolder: {Path(result.run_dir)}")
