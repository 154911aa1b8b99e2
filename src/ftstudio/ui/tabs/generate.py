"""Tab 3, Generate: a helper model (Ollama, OpenRouter, any OpenAI-compatible server, a GGUF run in-process) writes
question-answer pairs grounded in the knowledge store, as a background job of `ftstudio generate`, with the training
mix (question types, paraphrases, follow-ups, "with passages" pairs) from the synth settings; the frozen eval set is
made here too, as a job of `ftstudio data NAME --make-eval N`. The data can be previewed, reviewed (accept, edit,
reject: provenance kept), added to or replaced by an uploaded JSONL (the choice is explicit; a replace keeps a
backup), and downloaded.

The API key is a password field: it reaches the job through the subprocess's environment only.
"""

from __future__ import annotations

import typing
from pathlib import Path

import gradio as gr

from ftstudio.dataset import iter_lines, read_dataset
from ftstudio.errors import FtError
from ftstudio.requests import EvalSetRequest, GenerateRequest
from ftstudio.settings import EvalSettings
from ftstudio.synth import datafile, evalset, review
from ftstudio.synth.settings import SynthSettings
from ftstudio.ui.common import (
    JobPanel,
    as_fields,
    cli_box,
    command_preview,
    describe,
    form_request,
    number_text,
    open_project,
    request_widget,
    shown_values,
    start_request,
    store_uploads,
    unwrap,
    widget,
    widget_grid,
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


def list_helper_models(provider: str, base_url: str | None, api_key: str | None, root=None) -> list[str]:
    """Model names the provider lists now (llamacpp: GGUF files in the workspace `root` and installed packages);
    Unavailable/BadInput (with what to do) when it cannot be reached."""
    from ftstudio.synth.helpers import list_helpers

    return [m.id for m in list_helpers(provider, base_url or None, api_key or None, root=root)]


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
        run_opts = {n: request_widget(GenerateRequest, n, elem_id=f"generate-{n}") for n in RUN_OPTIONS}
        main = widgets(SynthSettings, defaults, [n for n in field_names() if n in MAIN_FIELDS])
    with gr.Accordion("More settings", open=False):
        rest = widget_grid(SynthSettings, defaults, [n for n in field_names() if n not in MAIN_FIELDS])
    fields = {**main, **rest}
    names = list(fields)
    inputs = [fields[n] for n in names]
    opt_inputs = [run_opts[n] for n in RUN_OPTIONS]
    preview = cli_box("Will run (CLI equivalent)", elem_id="generate-preview")
    start = gr.Button("Generate", variant="primary")
    started = gr.Markdown()
    panel = JobPanel(registry, "generate", result_summary)

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
        elem_id="data-table",
    )
    with gr.Row():
        save_edits = gr.Button("Save edits")
        review_lines = gr.Textbox(label="Lines to review", placeholder="1,4-9", elem_id="review-lines")
        accept = gr.Button("Accept")
        reject = gr.Button("Reject", variant="stop")
        delete_line = gr.Textbox(label="Line to delete", placeholder="a line number from the table's first column",
                                 elem_id="delete-line")  # fmt: skip
        delete = gr.Button("Delete line", variant="stop")
    edited = gr.Markdown()
    with gr.Row():
        import_mode = gr.Radio(
            ["append", "replace"], value=None, label="Your own JSONL file", elem_id="import-mode",
            info="append: add its pairs after the data; replace: use it instead (a backup copy is kept). Choose first.",
        )  # fmt: skip
        upload = gr.File(label="Upload it", file_types=[".jsonl", ".json"], elem_id="import-file")
        download = gr.File(label="Download data/sft_data.jsonl", interactive=False)

    def _request(project, provider_name, url, model_name, rest_values) -> GenerateRequest:
        values = dict(zip(names, rest_values[: len(names)], strict=True))
        opts = dict(zip(RUN_OPTIONS, rest_values[len(names) :], strict=True))
        connection = {"provider": provider_name, "base_url": url or None, "model": model_name or None}
        return form_request(GenerateRequest, project, {**values, **connection}, **opts)

    def show_preview(project_name, provider_name, url, model_name, *rest_values):
        if not project_name:
            return ""
        try:
            request = _request(open_project(root, project_name), provider_name, url, model_name, rest_values)
        except FtError as exc:
            return f"(not valid yet) {exc.message}"
        return command_preview(registry, project_name, request)

    def refresh_models(provider_name, url, key):
        try:
            found = list_helper_models(provider_name, url, key, root)
        except ImportError:
            return gr.update(), "Listing helper models needs the generation stage (ftstudio.synth)."
        except FtError as exc:
            return gr.update(choices=[]), f"⚠ {describe(exc)}"
        message = f"{len(found)} models from {provider_name}." if found else f"{provider_name} lists no models."
        return gr.update(choices=found, value=found[0] if found else None), message

    def offered(provider_name, url, chosen):
        """The helper model choice: the project's, else the first the provider lists now (so the first click on
        Generate works with what the page shows), with a note saying which."""
        if chosen:
            return gr.update(value=chosen, choices=[chosen]), ""
        try:
            found = list_helper_models(provider_name, url, None, root)
        except (ImportError, FtError) as exc:
            note = describe(exc) if isinstance(exc, FtError) else "listing needs the generation stage"
            return gr.update(value=None, choices=[]), f"No helper model chosen: ⚠ {note}"
        if not found:
            return gr.update(value=None, choices=[]), f"{provider_name} lists no models: pull one, then Refresh list."
        return gr.update(value=found[0], choices=found), f"{len(found)} models from {provider_name}; chose {found[0]}."

    def data_view(project):
        download_path = str(project.sft_data) if project.sft_data.exists() else None
        return [data_summary(project), data_rows(project), download_path, eval_summary(project)]

    def load(project_name):
        if not project_name:
            return [gr.update()] * (len(inputs) + 8 + len(eval_inputs))
        project = open_project(root, project_name)
        current = project.settings().synth
        model_choice, note = offered(current.provider, current.base_url, current.model)
        return shown_values(SynthSettings, current, names) + [
            current.provider, current.base_url or "", model_choice, note, *data_view(project),
            *shown_values(EvalSettings, project.settings().eval, EVAL_FIELDS),
        ]  # fmt: skip

    def on_open(project_name):
        """Opening the tab: the data as it is now. The form stays as typed, an emptied Helper model box too (the
        project's helper fills it when the page loads or the project changes, not on every visit)."""
        if not project_name:
            return [gr.update()] * 4
        return data_view(open_project(root, project_name))

    def other_provider(provider_name, url):
        """A model name belongs to its provider: choosing another provider offers that one's models."""
        return offered(provider_name, url or None, None)

    def start_with_key(project_name, provider_name, key, request):
        """Start the job, the API key passed to it only in its environment (never on disk or its command line)."""
        env = {}
        if key:
            variable = key_env(provider_name)
            if variable is None:
                return f"⚠ Not started: the {provider_name} provider takes no API key; clear the API key field."
            env[variable] = key
        return start_request(registry, project_name, request, env=env)

    def run_generate(project_name, provider_name, url, model_name, key, *rest_values):
        project = open_project(root, project_name)
        try:
            request = _request(project, provider_name, url, model_name, rest_values)
        except FtError as exc:
            return f"⚠ Not started: {describe(exc)}"
        return start_with_key(project_name, provider_name, key, request)

    def eval_request(project, provider_name, url, model_name, count, fresh, shares) -> EvalSetRequest:
        """The eval set's request: the shares shown as `[eval]` overrides, and the helper shown as this run's helper
        where it differs from `[synth]`; what the form changed is saved by the job once the set is written, as a
        Generate run saves its settings (the one save rule: nothing is stored before the job's checks pass)."""
        saved = project.settings().synth
        shown = {"provider": provider_name, "model": model_name or None, "base_url": url or None}
        helper = {k: v for k, v in shown.items() if v is not None and v != getattr(saved, k)}
        # The provider shown always counts: with no model, the last generation run's helper is taken only when it
        # used this provider.
        request = form_request(EvalSetRequest, project, dict(zip(EVAL_FIELDS, shares, strict=True)),
                               make_eval=count, fresh=bool(fresh), **{"provider": provider_name, **helper})  # fmt: skip
        return request.model_copy(update={"save": True}) if helper else request

    def run_make_eval(project_name, provider_name, url, model_name, key, count, fresh, *shares):
        """The eval set is written by the helper shown here (the project's unless changed; with no model chosen, the
        last generation run's, as the CLI does), as a job."""
        project = open_project(root, project_name)
        try:
            request = eval_request(project, provider_name, url, model_name, count, fresh, shares)
        except FtError as exc:
            return f"⚠ Not started: {describe(exc)}"
        return start_with_key(project_name, provider_name, key, request)

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
        line = number_text(str(number or ""))
        if not isinstance(line, int) or line < 1:
            return "Type the number of the line to delete (the table's first column).", gr.update(), gr.update()
        try:
            datafile.delete_lines(project, [line])
        except FtError as exc:
            return describe(exc), gr.update(), gr.update()
        return f"Deleted line {line}.", data_summary(project), data_rows(project)

    def do_upload(project_name, mode, path):
        project = open_project(root, project_name)
        if not path:
            return gr.update(), gr.update(), gr.update(), gr.update()
        if not mode:
            return "⚠ Not used: choose append or replace first, then upload again.", *[gr.update()] * 3
        if (blocked := _guard(project_name)) is not None:
            return blocked, gr.update(), gr.update(), gr.update()
        (stored,) = store_uploads(project, [path])
        try:
            # The provenance names the user's file (the CLI's `--import` does), not its safe copy in uploads/.
            result = datafile.import_file(project, stored, mode, name=Path(path).name)
        except FtError as exc:
            return f"⚠ Not used: {describe(exc)}", gr.update(), gr.update(), gr.update()
        bad = result["bad_lines"]
        note = f"{'Added' if mode == 'append' else 'Replaced the data with'} {result['imported']} examples."
        if result["backup"]:
            note += f" The previous data is kept in `{result['backup']}`."
        if bad:
            note += f" {len(bad)} bad lines left out: " + "; ".join(f"line {b['line']}: {b['error']}" for b in bad[:5])
        return note, data_summary(project), data_rows(project), str(project.sft_data)

    preview_inputs = [ctx.project, provider, base_url, model, *inputs, *opt_inputs]
    for comp in (ctx.project, provider, base_url, model, *inputs, *opt_inputs):
        comp.change(show_preview, preview_inputs, [preview], show_progress="hidden", queue=False)
    outputs = [*inputs, provider, base_url, model, listed, summary, table, download, eval_note, *eval_inputs]
    ctx.project.change(load, [ctx.project], outputs)
    ctx.demo.load(load, [ctx.project], outputs)
    ctx.tab.select(on_open, [ctx.project], [summary, table, download, eval_note])
    provider.input(other_provider, [provider, base_url], [model, listed])
    refresh.click(refresh_models, [provider, base_url, api_key], [model, listed], api_name="helper_models")
    start.click(
        run_generate,
        [ctx.project, provider, base_url, model, api_key, *inputs, *opt_inputs],
        [started],
        api_name="generate",
    )

    def after_job(project_name, job_id):
        # Results only: the settings and connection the user may be editing stay as they are.
        return data_view(open_project(root, project_name))

    panel.wire(ctx.timer, ctx.project, after_job, [summary, table, download, eval_note])
    eval_panel.wire(ctx.timer, ctx.project, after_job, [summary, table, download, eval_note])
    make_eval.click(
        run_make_eval,
        [ctx.project, provider, base_url, model, api_key, eval_count, eval_fresh, *eval_inputs],
        [eval_started],
        api_name="make_eval_set",
    )
    accept.click(lambda p, s: do_review(p, s, "accepted"), [ctx.project, review_lines], [edited, summary, table],
                 api_name="accept_lines")  # fmt: skip
    reject.click(lambda p, s: do_review(p, s, "rejected"), [ctx.project, review_lines], [edited, summary, table],
                 api_name="reject_lines")  # fmt: skip
    save_edits.click(do_save_edits, [ctx.project, table], [edited, summary, table], api_name="save_data_edits")
    delete.click(do_delete, [ctx.project, delete_line], [edited, summary, table], api_name="delete_data_line")
    # The box is emptied after each upload (`.then`), ready for the next file.
    upload.upload(do_upload, [ctx.project, import_mode, upload], [edited, summary, table, download],
                  api_name="upload_data").then(lambda: None, None, [upload], queue=False)  # fmt: skip


def result_summary(result) -> str:
    """What a finished generation wrote, dropped (and why) and cost: shown until the next job. A run that wrote
    pairs and stopped because the documents gave no more says it is partly done, plainly."""
    if not isinstance(result, dict) or "written" not in result:
        return ""
    dropped = ", ".join(f"{k} {v}" for k, v in sorted(result.get("dropped", {}).items())) or "none"
    tokens = result.get("tokens") or {}
    wrote = f"Wrote **{result['written']}** of {result.get('target')} pairs"
    if result.get("status") != "done" and result.get("stopped_because"):
        wrote = ("**Partly done**: w" if result.get("partial") else "W") + wrote[1:]
        wrote += f" (kept in the data below); stopped because {result['stopped_because']}"
        if result.get("to_get_more"):
            wrote += f". To get more: {as_fields(result['to_get_more'])}"
    return (
        f"{wrote} · dropped: {dropped} · "
        f"{result.get('requests')} requests ({result.get('retries')} retries, {result.get('failures')} failed) · "
        f"tokens {tokens.get('in')} in / {tokens.get('out')} out · cost ${result.get('cost_usd', 0):.4f}"
    )
