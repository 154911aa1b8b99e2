"""`ftstudio train` and `ftstudio chat`: fine-tune the base model on the project's data, then talk to the result."""

import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, get_args

import click

from ftstudio.cli.common import (
    emit,
    err,
    json_option,
    out,
    overrides,
    progress_bar,
    root_option,
    save_option,
    set_option,
    setting_help,
)
from ftstudio.project import Project
from ftstudio.requests import ChatRequest, TrainRequest
from ftstudio.train.launch_configs import KINDS
from ftstudio.train.settings import TrainSettings


def _request_help(field: str) -> str:
    return TrainRequest.model_fields[field].description or ""


def _chat_help(field: str) -> str:
    return ChatRequest.model_fields[field].description or ""


def _setting(name: str, kind: type | None = None) -> Any:
    """A --NAME option for one training setting, with the setting's own help; a setting of a few named values
    (a Literal) is a choice of them, so --help lists them."""
    choice = click.Choice(get_args(TrainSettings.model_fields[name].annotation)) if kind is None else kind
    return click.option(f"--{name.replace('_', '-')}", type=choice, help=setting_help(TrainSettings, name))


@click.command("train")
@click.argument("name", help="Project name.")
@click.option("--base-model", help=_request_help("base_model"))
@_setting("method")
@_setting("backend")
@_setting("epochs", float)
@_setting("max_steps", int)
@_setting("learning_rate", float)
@_setting("batch_size", int)
@_setting("max_seq_length", int)
@_setting("rank", int)
@_setting("seed", int)
@_setting("save_every", int)
@click.option("--only-accepted/--no-only-accepted", default=None, help=setting_help(TrainSettings, "only_accepted"))
@click.option("--resume", help=_request_help("resume"))
@click.option("--probe-only/--no-probe-only", help=_request_help("probe_only"))
@click.option(
    "--write-accelerate-config",
    metavar="KIND",
    help=f"Write an `accelerate launch` config ({', '.join(KINDS)}) into the project's accelerate/ folder, print "
    "the launch command, and stop.",
)
@click.option("--processes", default=2, help="Processes (devices) in the written accelerate config.")
@set_option
@save_option
@root_option
@json_option
def train(
    name: str,
    base_model: str | None,
    method: str | None,
    backend: str | None,
    epochs: float | None,
    max_steps: int | None,
    learning_rate: float | None,
    batch_size: int | None,
    max_seq_length: int | None,
    rank: int | None,
    seed: int | None,
    save_every: int | None,
    only_accepted: bool | None,
    resume: str | None,
    probe_only: bool,
    write_accelerate_config: str | None,
    processes: int,
    set_: tuple[str, ...],
    save: bool,
    root: Path | None,
    json: bool,
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
        sys.exit(130)


@click.command("chat")
@click.argument("name", help="Project name.")
@click.argument("prompt", help="What to ask the tuned model.")
@click.option("--run", help=_chat_help("run"))
@click.option("--passages", default=0, help=_chat_help("passages"))
@click.option("--compare/--no-compare", help=_chat_help("compare"))
@click.option("--max-new-tokens", type=int, help=_chat_help("max_new_tokens"))
@root_option
@json_option
def chat(
    name: str,
    prompt: str,
    run: str | None,
    passages: int,
    compare: bool,
    max_new_tokens: int | None,
    root: Path | None,
    json: bool,
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
