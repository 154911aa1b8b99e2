"""Tab 3, Generate: a helper model (Ollama, OpenRouter, any OpenAI-compatible server) writes question-answer pairs
grounded in the knowledge store, as a background job of `ftstudio generate`, with the training mix (question types,
paraphrases, follow-ups, "with passages" pairs) from the synth settings; the frozen eval set is made here too
(`ftstudio data NAME --make-eval N`). The data can be previewed, reviewed (accept, edit, reject: provenance kept),
replaced by an uploaded JSONL, and downloaded.

The API key is a password field: it reaches the job through the subprocess's environment only.
"""

from __future__ import annotations

import asyncio
import typing

import gradio as gr

from ftstudio.dataset import iter_lines, read_dataset, rewrite_lines
from ftstudio.errors import FtError
from ftstudio.jobs import cli_line
from ftstudio.synth import evalset, review
from ftstudio.synth.settings import EvalSettings, SynthSettings
from ftstudio.ui.common import (
    JobPanel,
    cli_box,
    describe,
    open_project,
    option_widget,
    save_section,
    settings_args,
    shown_values,
    start_job,
    store_uploads,
    unwrap,
    widget,
    widgets,
)

CONNECTION = ("provider", "base_url", "model")
MAIN_FIELDS = ("concurrency", "pairs_per_chunk", "temperature")
EVAL_FIELDS = ("held_out_share", "paraphrase_share", "per_chunk")  # the eval set's; the card's are in the Train tab
RUN_OPTIONS = ("pairs", "topic", "max_cost")  # options of the command itself, not project settings
DATA_COLUMNS = ["line", "question", "answer", "review", "kind"]
KEY_ENVS = {"openrouter": "OPENROUTER_API_KEY", "openai": "OPENAI_API_KEY"}


def _simple(name: str) -> bool:
    annotation, _ = unwrap(SynthSettings.model_fields[name].annotation)
    if typing.get_origin(annotation) is list:  # a set of choices: a checkbox group
        return typing.get_origin(typing.get_args(annotation)[0]) is typing.Literal
    return annotation in (int, float, bool, str) or typing.get_origin(annotation) is typing.Literal


def field_names() -> list[str]:
    """The settings fields the tab shows besides the connection, in the order of its inputs."""
    main = [n for n in MAIN_FIELDS if n in SynthSettings.model_fields]
    rest = [n for n in SynthSettings.model_fields if n not in (*CONNECTION, *MAIN_FIELDS) and _simple(n)]
    return main + rest


def key_env(provider: str) -> str | None:
    """The environment variable the provider reads its API key from (the provider's own, when it declares one)."""
    try:
        from ftstudio.synth.providers.registry import provider_class

        cls = provider_class(provider)
        return getattr(cls, "key_env", None) or KEY_ENVS.get(provider)
    except (ImportError, FtError):
        return KEY_ENVS.get(provider)


def list_helper_models(provider: str, base_url: str | None, api_key: str | None) -> list[str]:
    """Model names the provider lists now; Unavailable/BadInput (with what to do) when it cannot be reached."""
    from ftstudio.synth.providers.base import ProviderError
    from ftstudio.synth.providers.registry import create

    async def fetch() -> list[str]:
        async with create(provider, base_url=base_url or None, api_key=api_key or None) as helper:
            return [m.id for m in await helper.list_models()]

    try:
        return asyncio.run(fetch())
    except ProviderError as exc:
        raise exc.to_unavailable() from exc


def data_rows(project, limit: int = 500) -> list[list]:
    if not project.sft_data.exists():
        return []
    rows = []
    for number, item in iter_lines(project.sft_data):
        if hasattr(item, "messages"):
            rows.append([number, item.prompt, item.answer, review.status(item.meta), item.meta.get("kind", "pair")])
        else:
            rows.append([number, f"⚠ {item.message}", "", "", ""])
        if len(rows) >= limit:
            break
    return rows


def data_summary(project) -> str:
    try:
        data = read_dataset(project.sft_data)
    except FtError:
        return "No training data yet: generate some, or upload your own JSONL."
    bad = "".join(f"\n- {e}" for e in data.errors[:10])
    counts = review.counts(data.examples)
    reviewed = f" · review: {counts['accepted']} accepted, {counts['rejected']} rejected, {counts['pending']} pending"
    return f"**{len(data.examples)} examples** in `data/sft_data.jsonl`{reviewed}" + (
        f", {len(data.errors)} bad lines:{bad}" if data.errors else ""
    )


def eval_summary(project) -> str:
    """The eval set's size, kinds and version, or how to make one."""
    try:
        frozen = evalset.load(project)
    except FtError as exc:
        return f"⚠ {describe(exc)}"
    if frozen is None:
        return "No eval set yet. Make one before training, so every run's report card uses the same questions."
    kinds = ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in frozen.counts().items())
    return f"**{len(frozen.items)} eval questions** ({kinds}) in `data/eval_set.jsonl`, version `{frozen.version}`"


def build(ctx) -> None:
    root, registry = ctx.root, ctx.registry
    defaults = SynthSettings()
    with gr.Row():
        provider = widget(SynthSettings, "provider", defaults.provider)
        base_url = widget(SynthSettings, "base_url", defaults.base_url, elem_id="helper-base-url")
        api_key = gr.Textbox(
            label="API key",
            type="password",
            info="Used for this job only: passed in its environment, never stored",
        )
    with gr.Row():
        model = gr.Dropdown(
            elem_id="helper-model",
            label="Helper model",
            info=SynthSettings.model_fields["model"].description,
            choices=[],
            allow_custom_value=True,
            scale=4,
        )
        refresh = gr.Button("Refresh list", scale=1)
    listed = gr.Markdown(elem_id="helper-list-note")
    with gr.Row():
        run_opts = {n: option_widget("generate", n, elem_id=f"generate-{n}") for n in RUN_OPTIONS}
        main = widgets(SynthSettings, defaults, [n for n in field_names() if n in MAIN_FIELDS])
    with gr.Accordion("More settings", open=False), gr.Row():
        rest = widgets(SynthSettings, defaults, [n for n in field_names() if n not in MAIN_FIELDS])
    fields = {**main, **rest}
    names = list(fields)
    inputs = [fields[n] for n in names]
    opt_inputs = [run_opts[n] for n in RUN_OPTIONS]
    preview = cli_box("Will run (CLI equivalent)", elem_id="generate-preview")
    start = gr.Button("Generate", variant="primary")
    started = gr.Markdown()
    panel = JobPanel(registry, "generate")

    gr.Markdown("### Eval set (frozen, never trained on)")
    eval_note = gr.Markdown(elem_id="eval-set-summary")
    with gr.Row():
        eval_count = gr.Number(label="Eval questions", value=40, precision=0, minimum=1, elem_id="eval-count",
                               info="How many the helper writes (ftstudio data NAME --make-eval N)")  # fmt: skip
        eval_fresh = gr.Checkbox(label="Replace the existing set", value=False,
                                 info="Report cards of earlier runs are then not comparable")  # fmt: skip
        make_eval = gr.Button("Make eval set")
    with gr.Row():
        eval_fields = widgets(EvalSettings, EvalSettings(), EVAL_FIELDS)
    eval_inputs = [eval_fields[n] for n in EVAL_FIELDS]
    eval_started = gr.Markdown()
    eval_panel = JobPanel(registry, "data")

    gr.Markdown("### Training data")
    summary = gr.Markdown(elem_id="data-summary")
    table = gr.Dataframe(
        headers=DATA_COLUMNS,
        label="Preview and review (edit a question or answer, then save: it counts as accepted, provenance kept)",
        interactive=True,
        wrap=True,
        max_height=400,
    )
    with gr.Row():
        save_edits = gr.Button("Save edits")
        review_lines = gr.Textbox(label="Lines to review", placeholder="1,4-9", elem_id="review-lines")
        accept = gr.Button("Accept")
        reject = gr.Button("Reject", variant="stop")
        delete_line = gr.Number(label="Line to delete", precision=0, value=None)
        delete = gr.Button("Delete line", variant="stop")
    edited = gr.Markdown()
    with gr.Row():
        upload = gr.File(label="Use your own JSONL (replaces the data)", file_types=[".jsonl", ".json"])
        download = gr.File(label="Download data/sft_data.jsonl", interactive=False)

    def _connection(project_name, provider_name, url, model_name, values, opts):
        args = [project_name, "--provider", provider_name]
        if model_name:
            args += ["--model", model_name]
        if url:
            args += ["--base-url", url]
        return args + settings_args("generate", {**values, **opts}, SynthSettings)

    def show_preview(project_name, provider_name, url, model_name, *rest_values):
        if not project_name:
            return ""
        values = dict(zip(names, rest_values[: len(names)], strict=True))
        opts = dict(zip(RUN_OPTIONS, rest_values[len(names) :], strict=True))
        return cli_line("generate", _connection(project_name, provider_name, url, model_name, values, opts), root)

    def refresh_models(provider_name, url, key):
        try:
            found = list_helper_models(provider_name, url, key)
        except ImportError:
            return gr.update(), "Listing helper models needs the generation stage (ftstudio.synth)."
        except FtError as exc:
            return gr.update(choices=[]), f"⚠ {describe(exc)}"
        message = f"{len(found)} models from {provider_name}." if found else f"{provider_name} lists no models."
        return gr.update(choices=found, value=found[0] if found else None), message

    def load(project_name):
        if not project_name:
            return [gr.update()] * (len(inputs) + 7 + len(eval_inputs))
        project = open_project(root, project_name)
        current = project.settings().synth
        return shown_values(SynthSettings, current, names) + [
            current.provider,
            current.base_url or "",
            gr.update(value=current.model, choices=[current.model] if current.model else []),
            data_summary(project),
            data_rows(project),
            str(project.sft_data) if project.sft_data.exists() else None,
            eval_summary(project),
            *shown_values(EvalSettings, project.settings().eval, EVAL_FIELDS),
        ]

    def run_generate(project_name, provider_name, url, model_name, key, *rest_values):
        project = open_project(root, project_name)
        values = dict(zip(names, rest_values[: len(names)], strict=True))
        opts = dict(zip(RUN_OPTIONS, rest_values[len(names) :], strict=True))
        connection = {"provider": provider_name, "base_url": url, "model": model_name}
        settings = save_section(project, "synth", SynthSettings, {**values, **connection})
        chosen = {n: getattr(settings, n) for n in names}
        env = {}
        if key:
            variable = key_env(provider_name)
            if variable is None:
                return f"⚠ Not started: the {provider_name} provider takes no API key; clear the field."
            env[variable] = key
        args = _connection(project_name, settings.provider, settings.base_url, settings.model, chosen, opts)
        return start_job(registry, project_name, "generate", args, env=env)

    def run_make_eval(project_name, provider_name, url, model_name, key, count, fresh, *rest_values):
        project = open_project(root, project_name)
        shares = dict(zip(EVAL_FIELDS, rest_values[: len(EVAL_FIELDS)], strict=True))
        values = dict(zip(names, rest_values[len(EVAL_FIELDS) :], strict=True))
        connection = {"provider": provider_name, "base_url": url, "model": model_name}
        save_section(project, "synth", SynthSettings, {**values, **connection})  # the helper the job reads
        save_section(project, "eval", EvalSettings, shares)
        env = {}
        if key and (variable := key_env(provider_name)) is not None:
            env[variable] = key
        if not count or int(count) < 1:
            return "⚠ Not started: give the number of eval questions."
        args = [project_name, "--make-eval", str(int(count))] + (["--fresh"] if fresh else [])
        return start_job(registry, project_name, "data", args, env=env)

    def _guard(project_name) -> str | None:
        active = registry.active(project_name, "generate")
        return f"⚠ Generation job {active.id} is writing the data; stop it first." if active else None

    def do_save_edits(project_name, rows):
        project = open_project(root, project_name)
        if (blocked := _guard(project_name)) is not None:
            return blocked, gr.update(), gr.update()
        current = {row[0]: row for row in data_rows(project)}
        changes = {}
        for row in rows.values.tolist() if hasattr(rows, "values") else rows:
            number, question, answer = int(row[0]), str(row[1]), str(row[2])
            before = current.get(number)
            if before is None or (before[1] == question and before[2] == answer) or question.startswith("⚠"):
                continue
            changes[number] = (question, answer)
        if not changes:
            return "No edits to save.", gr.update(), gr.update()
        try:
            for number, (question, answer) in changes.items():
                review.edit(project, number, question, answer)  # keeps the line's meta (its provenance)
        except FtError as exc:
            return describe(exc), gr.update(), gr.update()
        return f"Saved {len(changes)} edited lines.", data_summary(project), data_rows(project)

    def do_review(project_name, spec, decision):
        project = open_project(root, project_name)
        if (blocked := _guard(project_name)) is not None:
            return blocked, gr.update(), gr.update()
        try:
            changed = review.decide(project, review.parse_lines(spec or ""), decision)
        except FtError as exc:
            return describe(exc), gr.update(), gr.update()
        return f"{decision.capitalize()} {changed} line(s).", data_summary(project), data_rows(project)

    def do_delete(project_name, number):
        project = open_project(root, project_name)
        if (blocked := _guard(project_name)) is not None:
            return blocked, gr.update(), gr.update()
        if not number:
            return "Give the line number to delete.", gr.update(), gr.update()
        try:
            rewrite_lines(project.sft_data, {int(number): None})
        except FtError as exc:
            return describe(exc), gr.update(), gr.update()
        return f"Deleted line {int(number)}.", data_summary(project), data_rows(project)

    def do_upload(project_name, path):
        project = open_project(root, project_name)
        if not path:
            return gr.update(), gr.update(), gr.update(), gr.update()
        if (blocked := _guard(project_name)) is not None:
            return blocked, gr.update(), gr.update(), gr.update()
        from pathlib import Path

        try:
            data = read_dataset(Path(path))
        except FtError as exc:
            return describe(exc), gr.update(), gr.update(), gr.update()
        if data.errors or not data.examples:
            problems = "\n".join(f"- {e}" for e in data.errors[:20]) or "- the file has no examples"
            return f"⚠ Not used: fix these lines first:\n{problems}", gr.update(), gr.update(), gr.update()
        (stored,) = store_uploads(project, [path])
        stored.replace(project.sft_data)
        return (
            f"Using your {len(data.examples)} examples.",
            data_summary(project),
            data_rows(project),
            str(project.sft_data),
        )

    preview_inputs = [ctx.project, provider, base_url, model, *inputs, *opt_inputs]
    for comp in (ctx.project, provider, base_url, model, *inputs, *opt_inputs):
        comp.change(show_preview, preview_inputs, [preview], show_progress="hidden", queue=False)
    outputs = [*inputs, provider, base_url, model, summary, table, download, eval_note, *eval_inputs]
    ctx.project.change(load, [ctx.project], outputs)
    ctx.demo.load(load, [ctx.project], outputs)
    refresh.click(refresh_models, [provider, base_url, api_key], [model, listed], api_name="helper_models")
    start.click(
        run_generate,
        [ctx.project, provider, base_url, model, api_key, *inputs, *opt_inputs],
        [started],
        api_name="generate",
    )

    def after_job(project_name, job_id):
        # Results only: the settings and connection the user may be editing stay as they are.
        return load(project_name)[len(inputs) + 3 : len(inputs) + 7]

    panel.wire(ctx.timer, ctx.project, after_job, [summary, table, download, eval_note])
    eval_panel.wire(ctx.timer, ctx.project, after_job, [summary, table, download, eval_note])
    make_eval.click(
        run_make_eval,
        [ctx.project, provider, base_url, model, api_key, eval_count, eval_fresh, *eval_inputs, *inputs],
        [eval_started],
        api_name="make_eval_set",
    )
    accept.click(lambda p, s: do_review(p, s, "accepted"), [ctx.project, review_lines], [edited, summary, table],
                 api_name="accept_lines")  # fmt: skip
    reject.click(lambda p, s: do_review(p, s, "rejected"), [ctx.project, review_lines], [edited, summary, table],
                 api_name="reject_lines")  # fmt: skip
    save_edits.click(do_save_edits, [ctx.project, table], [edited, summary, table], api_name="save_data_edits")
    delete.click(do_delete, [ctx.project, delete_line], [edited, summary, table], api_name="delete_data_line")
    upload.upload(do_upload, [ctx.project, upload], [edited, summary, table, download], api_name="upload_data")
