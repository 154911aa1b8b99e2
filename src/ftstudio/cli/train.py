"""`ftstudio train` and `ftstudio chat`: fine-tune the base model on the project's data, then talk to the result."""

import os
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from ftstudio.cli.common import JsonOpt, RootOpt, SaveOpt, SetOpt, emit, err, out, overrides, progress_bar, setting_help
from ftstudio.project import Project
from ftstudio.requests import ChatRequest, TrainRequest
from ftstudio.train.settings import TrainSettings


def _request_help(field: str) -> str:
    return TrainRequest.model_fields[field].description or ""


def _chat_help(field: str) -> str:
    return ChatRequest.model_fields[field].description or ""


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("chat")(chat)


def train(
    name: Annotated[str, typer.Argument(help="Project name.")],
    base_model: Annotated[str | None, typer.Option(help=_request_help("base_model"))] = None,
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
        bool | None,  # noqa: UP007
        typer.Option("--only-accepted/--no-only-accepted", help=setting_help(TrainSettings, "only_accepted")),
    ] = None,
    resume: Annotated[str | None, typer.Option(help=_request_help("resume"))] = None,
    probe_only: Annotated[bool, typer.Option(help=_request_help("probe_only"))] = False,
    write_accelerate_config: Annotated[
        str | None,  # noqa: UP007
        typer.Option(
            help="Write an `accelerate launch` config (ddp, fsdp, deepspeed-zero2, deepspeed-zero3) into "
            "the project's accelerate/ folder, print the launch command, and stop.",
            metavar="KIND",
        ),
    ] = None,
    processes: Annotated[int, typer.Option(help="Processes (devices) in the written accelerate config.")] = 2,
    set_: SetOpt = None,
    save: SaveOpt = False,
    root: RootOpt = None,
    json: JsonOpt = False,
) -> None:
    """Train a LoRA/QLoRA adapter on data/sft_data.jsonl into runs/<run-id>/ (Ctrl-C saves and stops).

    Setting flags and --set KEY=VALUE apply to this run; --save also stores them (and --base-model) in project.toml.
    """
    import ftstudio

    project = Project.open(name, root)
    if write_accelerate_config:
        return _write_accelerate_config(project, write_accelerate_config, processes, json)
    flags = {k: v for k, v in locals().items() if k in TrainRequest.flags}
    request = TrainRequest.build(base_model=base_model, resume=resume, probe_only=probe_only,
                                 overrides=overrides(flags, set_), save=save)  # fmt: skip
    cancel = threading.Event()
    _stop_on_ctrl_c(cancel)
    with progress_bar("training") as bar:
        result = ftstudio.train(project, request, progress=_with_log(bar), cancel=cancel)
    if os.environ.get("RANK", "0") != "0":
        return  # under torchrun / accelerate launch, the first process speaks for all
    emit(result.to_dict(), json, lambda: _print_result(result, name))
    if result.status == "stopped":
        raise typer.Exit(130)


def chat(
    name: Annotated[str, typer.Argument(help="Project name.")],
    prompt: Annotated[str, typer.Argument(help="What to ask the tuned model.")],
    run: Annotated[str | None, typer.Option(help=_chat_help("run"))] = None,
    passages: Annotated[int, typer.Option(help=_chat_help("passages"))] = 0,
    compare: Annotated[bool, typer.Option(help=_chat_help("compare"))] = False,
    max_new_tokens: Annotated[int | None, typer.Option(help=_chat_help("max_new_tokens"))] = None,
    root: RootOpt = None,
    json: JsonOpt = False,
) -> None:
    """Ask the base model with a run's adapter, using its chat template; the answer streams as it is written.

    --passages K puts the K best matching chunks of the knowledge store before the question; --compare also asks
    the base model alone.
    """
    import ftstudio

    request = ChatRequest.build(prompt=prompt, run=run, passages=passages, compare=compare,
                                max_new_tokens=max_new_tokens)  # fmt: skip
    shown: list[str] = []

    def stream(event) -> None:
        if json:
            return
        if event.stage != (shown[-1] if shown else None):
            if shown:
                sys.stdout.write("\n")
            sys.stdout.write({"chat": "tuned: " if compare else "", "chat-base": "base:  "}[event.stage])
            shown.append(event.stage)
        sys.stdout.write(event.message)
        sys.stdout.flush()

    result = ftstudio.chat(Project.open(name, root), request, progress=stream)
    if json:
        emit(result.to_dict(), True)
        return
    sys.stdout.write("\n")
    for source in result.sources:
        err.print(f"passage: {source}", markup=False)


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
