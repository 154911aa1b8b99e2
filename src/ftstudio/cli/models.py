"""`ftstudio models …`: the catalog with a fit verdict, checking a model, saving the project's choice, tiny models."""

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich.markup import escape

from ftstudio.cli.common import PATH, Group, emit, json_option, out, progress_bar, root_option
from ftstudio.progress import ProgressFn

_PLAN = "Plan for this instead of the project's training setting ("
seq_len_option = click.option("--seq-len", type=click.IntRange(min=1), help=_PLAN + "max_seq_length).")
batch_option = click.option("--batch", type=click.IntRange(min=1), help=_PLAN + "batch_size).")
method_option = click.option("--method", help=_PLAN + "method): lora (16/32-bit base) or qlora (4-bit base, CUDA).")
project_option = click.option(
    "--project",
    help="Plan with this project's training settings (method, sequence length, batch, LoRA rank), as its Base model "
    "tab does; default: those a new project starts with.",
)
trust_option = click.option(
    "--trust-remote-code", is_flag=True, help="Allow a model whose code ships in its repository. Trusted only."
)
_COLOUR = {"ok": "green", "warn": "yellow", "error": "red"}
MODEL_HELP = (
    "Hugging Face hub id (org/name), a local model folder, a .gguf file, or ollama:NAME[:TAG] (read from Ollama's "
    "model store); a GGUF is dequantized once into ftstudio's cache."
)


def _mark(verdict: str) -> str:
    return f"[{_COLOUR[verdict]}]{verdict:<5}[/]"


def _plan(project, seq_len: int | None, batch: int | None, method: str | None) -> dict:
    """The checks' plan, as every face makes it (CheckRequest.plan): the project's (or a new project's) training
    settings with the flags given."""
    from ftstudio.cli.common import overrides
    from ftstudio.requests import CheckRequest

    flags = overrides({"max_seq_length": seq_len, "batch_size": batch, "method": method}, None)
    return CheckRequest.build(overrides=flags).plan(project)


@click.group(
    "models",
    cls=Group,
    invoke_without_command=True,
    help="Base models: which can be trained here, and the project's choice.",
)
@project_option
@seq_len_option
@batch_option
@method_option
@root_option
@json_option
@click.pass_context
def models(
    ctx: click.Context,
    project: str | None,
    seq_len: int | None,
    batch: int | None,
    method: str | None,
    root: Path | None,
    json: bool,
) -> None:
    """List curated base models with a fit verdict for this machine, fastest to try first.

    Planned with a project's training settings (--project) or a new project's; --seq-len, --batch and --method plan
    for other values instead.
    """
    if ctx.invoked_subcommand is not None:
        return
    from ftstudio.basemodels.checks import catalog_fits
    from ftstudio.basemodels.hardware import detect_hardware
    from ftstudio.project import Project

    plan = _plan(Project.open(project, root) if project else None, seq_len, batch, method)
    hw = detect_hardware()
    rows = catalog_fits(hw, **plan)
    data = {
        "hardware": hw.to_dict(),
        "plan": plan,
        "models": [
            {"id": e.id, "name": e.name, "params_b": e.params, "context": e.context, "license": e.license,
             "architecture": e.architecture, "chat_template": e.chat_template, "bnb_4bit": e.bnb_4bit,
             "full_precision": e.full_precision, "gated": e.gated, "gguf_export": r.info["gguf_export"],
             "verdict": r.verdict, "reasons": r.reasons, "suggestions": r.suggestions,
             "memory_gib": r.estimates[r.info["effective_method"]].to_dict()["total_gib"]}
            for e, r in rows
        ],
    }  # fmt: skip
    emit(data, json, lambda: _print_table(hw.describe(), data["models"], plan))


def _print_table(machine: str, rows: list[dict], plan: dict) -> None:
    out.print(f"Base models for this machine: {machine}; planned for {plan['method']}, {plan['seq_len']} tokens × "
              f"batch {plan['batch']}, rank {plan['lora_rank']}")  # fmt: skip
    width = max(len(m["id"]) for m in rows) + 2
    for m in rows:
        name = m["id"] + (" (4-bit)" if m["bnb_4bit"] else "")
        facts = (
            f"{m['params_b']:5.2f} B  ctx {m['context']:>6}  {m['architecture']:<7}  "
            f"gguf {'yes' if m['gguf_export'] else 'no ':<3}  {m['memory_gib']:5.1f} GiB  {m['license']}"
        )
        out.print(f"{_mark(m['verdict'])}  {escape(f'{name:<{width + 8}} {facts}')}", markup=True)
        for reason in m["reasons"]:
            out.print(f"        {reason}", markup=False)


@models.command("check")
@click.argument("model", help=MODEL_HELP)
@project_option
@seq_len_option
@batch_option
@method_option
@trust_option
@root_option
@json_option
def check(
    model: str,
    project: str | None,
    seq_len: int | None,
    batch: int | None,
    method: str | None,
    trust_remote_code: bool,
    root: Path | None,
    json: bool,
) -> None:
    """Can MODEL be trained and exported here? Reads only config and tokenizer files (a GGUF is imported first:
    dequantized once into ftstudio's cache, then checked as that folder). Exit 0 for ok or warn.

    The same check as `ftstudio.check_model` and the studio's Check button, planned with a project's training
    settings and trust_remote_code (--project) or a new project's; --seq-len, --batch and --method plan for other
    values instead.
    """
    import ftstudio
    from ftstudio.cli.common import overrides
    from ftstudio.project import Project

    chosen = Project.open(project, root) if project else None
    plan = overrides({"max_seq_length": seq_len, "batch_size": batch, "method": method}, None)
    request = ftstudio.CheckRequest.build(model=model, trust_remote_code=trust_remote_code or None, overrides=plan)
    with _importing(model) as progress:
        result = ftstudio.check_model(chosen, request, progress=progress)
    emit(result.to_dict(), json, lambda: _print_check(result))
    sys.exit(result.exit_code)


@contextmanager
def _importing(model: str) -> Iterator[ProgressFn | None]:
    """A progress bar while a GGUF spec is imported (seconds to minutes); nothing for a hub id or folder."""
    from ftstudio.basemodels.gguf_import import is_gguf_spec

    if not is_gguf_spec(model):
        yield None
        return
    with progress_bar("importing GGUF") as bar:
        yield bar


def _print_check(result) -> None:
    info = result.info
    if info.get("offline_reason"):
        out.print(f"[yellow]offline[/] ({escape(str(info['offline_reason']))}): using the local hub cache", markup=True)
    machine = result.hardware.describe()
    facts = escape(f"({info.get('architecture')}; {machine})")
    out.print(f"[bold]{escape(result.model)}[/]: {_mark(result.verdict).strip()}  {facts}", markup=True)
    for finding in result.findings:
        out.print(f"  {_mark(finding.level)}  {escape(f'{finding.check}: {finding.message}')}", markup=True)
    for suggestion in result.suggestions:
        out.print(f"  → {suggestion}", markup=False)
    for method, estimate in result.estimates.items():
        out.print(f"  {method} estimate: {estimate.total / 2**30:.2f} GiB", markup=False)


@models.command("use")
@click.argument("name", help="Project name.")
@click.argument("model", help=MODEL_HELP)
@click.option("--force", is_flag=True, help="Save even when the check says error.")
@seq_len_option
@batch_option
@method_option
@trust_option
@root_option
@json_option
def use(
    name: str,
    model: str,
    force: bool,
    seq_len: int | None,
    batch: int | None,
    method: str | None,
    trust_remote_code: bool,
    root: Path | None,
    json: bool,
) -> None:
    """Check MODEL, then save it as the project's base model (base_model.model in project.toml: a folder or .gguf
    file as its absolute path, an ollama: name as given; a GGUF's checks run on its imported folder).

    The check plans with the project's training settings (method, sequence length, batch, LoRA rank), as
    `models check --project` and the studio's do; --seq-len, --batch and --method plan for other values instead.
    """
    from ftstudio.basemodels.choice import use_model
    from ftstudio.project import Project

    project = Project.open(name, root)
    plan = _plan(project, seq_len, batch, method)
    with _importing(model) as progress:
        result = use_model(project, model, force=force, trust_remote_code=trust_remote_code, progress=progress, **plan)
    saved = project.settings().base_model.model
    emit(
        {"project": name, "model": saved, **result.to_dict()},
        json,
        lambda: out.print(
            f"{escape(name)}: base model [bold]{escape(str(saved))}[/] ({_mark(result.verdict).strip()})", markup=True
        ),
    )


# The registry's family names (ftstudio.families, too heavy to import at CLI start-up; a test holds them equal).
TINY_FAMILIES_HELP = (
    "A model family: llama, mistral, smollm3, qwen3, qwen2, gemma3, gemma2, phi4-mini, phi3, granite or olmo2."
)


@models.command("tiny")
@click.argument("folder", type=PATH, help="New folder to write the model into (must not exist or be empty).")
@click.option("--arch", default="llama", help=TINY_FAMILIES_HELP)
@click.option("--4bit", "quantized_4bit", is_flag=True, help="Claim bitsandbytes 4-bit in config.json.")
@root_option
@json_option
def tiny(folder: Path, arch: str, quantized_4bit: bool, root: Path | None, json: bool) -> None:
    """Write a tiny random-weight model with its family's real tokenizer design and chat template, for offline tries."""
    from ftstudio.basemodels.tiny import write_tiny_model

    path = write_tiny_model(folder, arch, quantized_4bit=quantized_4bit)
    emit({"folder": str(path), "arch": arch}, json, lambda: out.print(f"Wrote a tiny {arch} model to {path}"))
