"""Tab 4, Train: what will be trained, the hyper-parameters, start/stop/resume, the live loss plot, the runs,
base-versus-tuned answers at the end, and each run's knowledge report card (a table, and a bar chart across runs).
Training runs as a background job of `ftstudio train`, the card as one of `ftstudio eval`."""

from __future__ import annotations

import calendar
import html
import time
import typing

import gradio as gr
import pandas as pd

from ftstudio.dataset import read_dataset
from ftstudio.errors import FtError
from ftstudio.requests import EvaluateRequest, TrainRequest
from ftstudio.settings import EvalSettings
from ftstudio.synth import review
from ftstudio.train.settings import TrainSettings
from ftstudio.ui.common import (
    JobPanel,
    cli_box,
    command_preview,
    describe,
    form_request,
    number_text,
    open_project,
    shown_values,
    start_request,
    unwrap,
    widget_grid,
    widgets,
)

MAIN_FIELDS = ("method", "epochs", "max_steps", "learning_rate", "rank", "alpha", "batch_size", "max_seq_length")
RUN_COLUMNS = ["run", "status", "base model", "steps", "train loss", "eval loss", "started"]


def _simple(name: str) -> bool:
    """Fields a widget can show; the rest (lists) stay in project.toml."""
    annotation, _ = unwrap(TrainSettings.model_fields[name].annotation)
    return annotation in (int, float, bool, str) or typing.get_origin(annotation) is typing.Literal


def field_names() -> list[str]:
    """The settings fields the tab shows, in the order of its inputs: the main ones, then the rest."""
    main = [n for n in MAIN_FIELDS if n in TrainSettings.model_fields]
    return main + [n for n in TrainSettings.model_fields if n not in MAIN_FIELDS and _simple(n)]


def _runs(project):
    try:
        from ftstudio.train.runs import list_runs
    except ImportError:
        return []
    return list_runs(project)


def runs_table(project) -> list[list]:
    rows = []
    for run in reversed(_runs(project)):
        info = run.info
        rows.append(
            [
                run.id,
                run.status,
                info.get("base_model"),
                f"{info.get('steps', 0)}/{info.get('total_steps', '?')}",
                info.get("final_train_loss"),
                info.get("final_eval_loss"),
                info.get("started_at"),
            ]
        )
    return rows


def loss_frame(project, run_id: str | None) -> pd.DataFrame:
    """Train and eval loss by step for one run (the newest when `run_id` is empty), long form for gr.LinePlot."""
    runs = _runs(project)
    run = next((r for r in runs if r.id == run_id), runs[-1] if runs else None)
    rows = []
    if run is not None:
        for record in run.metrics():
            if "loss" in record:
                rows.append({"step": record["step"], "loss": record["loss"], "series": "train"})
            if "eval_loss" in record:
                rows.append({"step": record["step"], "loss": record["eval_loss"], "series": "eval"})
    # Typed even when empty: the plot reads a column's kind from its dtype, and an untyped empty frame would make
    # step and loss categories, not numbers.
    frame = pd.DataFrame(rows, columns=["step", "loss", "series"])
    return frame.astype({"step": "int64", "loss": "float64", "series": "string"})


def plot_update(project, run_id: str | None):
    """The loss plot for a run, as an update that redraws it.

    Gradio 6's plot keeps the series it first drew and draws nothing after an empty frame; a changed title makes it
    redraw from scratch, so the title carries the point count (and the run's time), and "no data" is sent as None,
    not an empty frame.
    """
    frame = loss_frame(project, run_id)
    runs = _runs(project)
    run = next((r for r in runs if r.id == run_id), runs[-1] if runs else None)
    if run is None:
        return gr.update(value=None, title="Loss")
    steps = int(frame.loc[frame["series"] == "train", "step"].max()) if len(frame) else 0
    title = f"Loss of run {run.id}: {steps} steps, {len(frame)} points" + timing(run.info, steps)
    if not len(frame):
        return gr.update(value=None, title=title)
    return gr.update(value=frame, title=title, **plot_limits(frame))


def plot_limits(frame: pd.DataFrame) -> dict[str, list[float]]:
    """Axis limits a step and a few percent beyond the points: the plot clips its marks at the axes, so a point on
    the edge (the first step, the last step's eval point, the highest loss) would be cut in half."""
    low, high = float(frame["loss"].min()), float(frame["loss"].max())
    pad = (high - low) * 0.08 or max(abs(high) * 0.05, 0.05)
    return {"x_lim": [int(frame["step"].min()) - 1, int(frame["step"].max()) + 1], "y_lim": [low - pad, high + pad]}


def timing(info: dict, steps: int) -> str:
    """ " · elapsed 1:05 · ETA 3:12" from run.json: since the run started, and what its pace says is left."""
    try:
        started = calendar.timegm(time.strptime(info["started_at"], "%Y-%m-%dT%H:%M:%SZ"))
    except (KeyError, TypeError, ValueError):
        return ""
    finished = info.get("finished_at")
    end = calendar.timegm(time.strptime(finished, "%Y-%m-%dT%H:%M:%SZ")) if finished else time.time()
    elapsed = max(0.0, end - started)
    shown = f" · elapsed {_clock(elapsed)}"
    total = info.get("total_steps")
    if info.get("status") == "running" and steps and isinstance(total, int) and total > steps:
        shown += f" · ETA {_clock(elapsed / steps * (total - steps))}"
    return shown


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def summary(project) -> str:
    """What will be trained: the base model, the data, and how."""
    settings = project.settings()
    lines = [f"**Base model**: `{settings.base_model.model or 'none chosen: pick one in tab 2'}`"]
    try:
        data = read_dataset(project.sft_data)
        bad = f", **{len(data.errors)} bad lines** (first: {data.errors[0]})" if data.errors else ""
        counts = review.counts(data.examples)
        used = counts["accepted"] if settings.train.only_accepted else len(data.examples) - counts["rejected"]
        lines.append(
            f"**Data**: {len(data.examples)} examples in `data/sft_data.jsonl`{bad}; review: {counts['accepted']} "
            f"accepted, {counts['rejected']} rejected, {counts['pending']} pending → **{used} trained on**"
        )
    except FtError as exc:
        lines.append(f"**Data**: {describe(exc)}")
    how = f"**Method**: {settings.train.method}"
    if "backend" in TrainSettings.model_fields:
        how += f"; **backend**: {settings.train.backend} ({TrainSettings.model_fields['backend'].description})"
    lines.append(how)
    return "\n\n".join(lines)


def cell(text) -> str:
    """Text safe inside a Markdown table cell: a model's raw answer must not turn into Markdown."""
    escaped = html.escape(str(text or ""))
    for mark in "\\`*_~[]|#":
        escaped = escaped.replace(mark, "\\" + mark)
    return escaped.replace("\n", "<br>")


def _card_of(run) -> dict | None:
    report = run.eval_report() if run is not None else None
    return (report or {}).get("card")


def _pct(result: dict) -> str:
    if result.get("accuracy") is None:
        return "—"
    return f"**{result['accuracy'] * 100:.0f}%** ({result['correct']}/{result['graded']}, {result['partly']} partly)"


def card_view(project, run_id: str | None) -> str:
    """The report card of a run (the newest when `run_id` is empty): accuracy per condition and kind of question,
    then every question with the four answers and their verdicts."""
    from ftstudio.train.card import CONDITIONS, LABELS

    runs = _runs(project)
    run = next((r for r in runs if r.id == run_id), runs[-1] if runs else None)
    card = _card_of(run)
    if not card:
        return ("No report card for this run yet: make an eval set (Generate tab), then train, or press "
                "*Make the report card*.")  # fmt: skip
    head = "| | " + " | ".join(LABELS[c] for c in CONDITIONS) + " |"
    lines = [
        f"Run `{card['run']}` · {card['questions']} questions · eval set `{card['eval_set_version']}` · judge "
        f"`{card['judge'] or 'none'}` · **{card['status']}**",
        *[f"\n⚠ {html.escape(w)}" for w in card.get("warnings", [])],
        "",
        head,
        "|---" * (len(CONDITIONS) + 1) + "|",
        "| all | " + " | ".join(_pct(card["conditions"][c]) for c in CONDITIONS) + " |",
    ]
    for kind, split in card["splits"].items():
        lines.append(f"| {kind.replace('_', ' ')} ({split['questions']}) | "
                     + " | ".join(_pct(split[c]) for c in CONDITIONS) + " |")  # fmt: skip
    lines += ["", "| kind | question | reference | " + " | ".join(LABELS[c] for c in CONDITIONS) + " |",
              "|---" * (len(CONDITIONS) + 3) + "|"]  # fmt: skip
    for row in card["table"]:
        answers = []
        for c in CONDITIONS:
            a = row["answers"][c]
            verdict = f"**{a['verdict']}**: {cell(a['reason'])}<br>" if a["verdict"] else ""
            answers.append(verdict + cell(a["answer"]))
        lines.append(f"| {row['kind']} | {cell(row['question'])} | {cell(row['reference'])} | " + " | ".join(answers)
                     + " |")  # fmt: skip
    return "\n".join(lines)


def card_frame(project) -> pd.DataFrame:
    """Accuracy (%) per run and condition, for the bar chart across runs; runs without a graded card are left out."""
    from ftstudio.train.card import CONDITIONS, LABELS

    rows = []
    for run in _runs(project):
        card = _card_of(run)
        for c in CONDITIONS if card else ():
            accuracy = card["conditions"][c]["accuracy"]
            if accuracy is not None:
                rows.append({"bar": f"{run.id} · {LABELS[c]}", "run": run.id, "condition": LABELS[c],
                             "accuracy": round(accuracy * 100, 1)})  # fmt: skip
    frame = pd.DataFrame(rows, columns=["bar", "run", "condition", "accuracy"])
    return frame.astype({"bar": "string", "run": "string", "condition": "string", "accuracy": "float64"})


def card_plot_update(project):
    frame = card_frame(project)
    runs = frame["run"].nunique() if len(frame) else 0
    return gr.update(value=frame if len(frame) else None, title=f"Accuracy by run ({runs} runs with a card)")


def eval_view(project, run_id: str | None) -> str:
    """Base versus tuned eval loss and answers side by side, from the run's eval.json."""
    runs = _runs(project)
    run = next((r for r in runs if r.id == run_id), runs[-1] if runs else None)
    report = run.eval_report() if run is not None else None
    if not report:
        return "The comparison appears here when a run completes."
    lines = [
        f"Held-out examples: {report.get('examples')} · eval loss **base {report.get('base_eval_loss')}** → "
        f"**tuned {report.get('tuned_eval_loss')}**" + (" (improved)" if report.get("improved") else ""),
        "",
        "| question | reference | base | tuned |",
        "|---|---|---|---|",
    ]

    for item in report.get("answers", []):
        lines.append(
            f"| {cell(item.get('prompt'))} | {cell(item.get('reference'))} | {cell(item.get('base'))} | "
            f"{cell(item.get('tuned'))} |"
        )
    return "\n".join(lines)


def build(ctx) -> None:
    root, registry = ctx.root, ctx.registry
    what = gr.Markdown(elem_id="train-what")
    defaults = TrainSettings()
    with gr.Row():
        main = widgets(TrainSettings, defaults, [n for n in field_names() if n in MAIN_FIELDS])
    with gr.Accordion("More settings", open=False):
        rest = widget_grid(TrainSettings, defaults, [n for n in field_names() if n not in MAIN_FIELDS])
    fields = {**main, **rest}
    names = list(fields)
    inputs = [fields[n] for n in names]
    with gr.Row():
        resume = gr.Dropdown(label="Resume run", info="Continue a stopped run from its last checkpoint", choices=[])
    with gr.Accordion("Pre-flight: one example as training sees it, and the fit-and-time probe", open=False):
        with gr.Row():
            example_line = gr.Textbox(label="Data line", info="Which example to show",
                                      placeholder="empty: the first example")  # fmt: skip
            show_mask = gr.Button("Show trained tokens")
            probe = gr.Button("Probe memory and time")
        mask = gr.HighlightedText(
            label="Trained tokens (highlighted) and context (plain)",
            color_map={"trained": "green"},
            show_legend=True,
            combine_adjacent=True,
        )
        mask_note = gr.Markdown()
        probe_note = gr.Markdown()
    preview = cli_box("Will run (CLI equivalent)", elem_id="train-preview")
    start = gr.Button("Start training", variant="primary")
    started = gr.Markdown()
    panel = JobPanel(registry, "train")

    gr.Markdown("### Loss")
    with gr.Row():
        shown_run = gr.Dropdown(label="Run shown", choices=[], scale=3, elem_id="train-run-shown")
        reload_runs = gr.Button("Refresh", size="sm", scale=0)
    # Points, not lines: an eval series of one point (a 20-step run evaluates once) is drawn, and in the legend.
    plot = gr.ScatterPlot(
        x="step",
        y="loss",
        color="series",
        color_map={"train": "#2f6db5", "eval": "#e8741c"},
        title="Loss",
        height=300,
        x_title="step",
        x_axis_format="d",  # steps are whole numbers
        elem_id="train-plot",
    )
    runs = gr.Dataframe(headers=RUN_COLUMNS, label="Runs", interactive=False)
    comparison = gr.Markdown()

    gr.Markdown("### Report card: did it learn the documents? (docs/eval.md tells how to read it)")
    card_plot = gr.BarPlot(x="bar", y="accuracy", color="condition", title="Accuracy by run", y_lim=[0, 100],
                           y_title="accuracy %", x_title="run · condition", height=300, sort=None,
                           elem_id="card-plot")  # fmt: skip
    card_md = gr.Markdown(elem_id="report-card")
    with gr.Row():
        judge_model = gr.Textbox(label="Judge model", info=EvalSettings.model_fields["judge_model"].description)
        evaluate = gr.Button("Make the report card of the run shown")
    card_started = gr.Markdown()
    card_panel = JobPanel(registry, "eval")

    def _request(project, values, resume_id, probe_only=False) -> TrainRequest:
        return form_request(TrainRequest, project, dict(zip(names, values, strict=True)), resume=resume_id or None,
                            probe_only=probe_only)  # fmt: skip

    def show_preview(project_name, resume_id, *values):
        if not project_name:
            return ""
        try:
            request = _request(open_project(root, project_name), values, resume_id)
        except FtError as exc:
            return f"(not valid yet) {exc.message}"
        return command_preview(registry, project_name, request)

    def load(project_name):
        if not project_name:
            return [gr.update()] * (len(inputs) + 8)
        project = open_project(root, project_name)
        current = project.settings().train
        all_runs = _runs(project)
        ids = [r.id for r in reversed(all_runs)]
        resumable = [r.id for r in reversed(all_runs) if r.status in ("stopped", "failed")]
        return shown_values(TrainSettings, current, names) + [
            summary(project),
            gr.update(choices=resumable, value=None),
            gr.update(choices=ids, value=ids[0] if ids else None),
            runs_table(project),
            plot_update(project, ids[0] if ids else None),
            eval_view(project, ids[0] if ids else None),
            card_view(project, ids[0] if ids else None),
            card_plot_update(project),
        ]

    def run_train(project_name, resume_id, *values):
        project = open_project(root, project_name)
        try:
            request = _request(project, values, resume_id)
        except FtError as exc:
            return f"⚠ Not started: {describe(exc)}"
        return start_request(registry, project_name, request)

    def live(project_name, run_id):
        """While training runs, follow the newest run; otherwise leave the plot alone."""
        if not project_name:
            return gr.update(), gr.update(), gr.update(), gr.update()
        try:
            active = registry.active(project_name, "train")
        except FtError:
            return gr.update(), gr.update(), gr.update(), gr.update()
        if active is None:
            return gr.update(), gr.update(), gr.update(), gr.update(interactive=True)
        project = open_project(root, project_name)
        all_runs = _runs(project)
        newest = all_runs[-1].id if all_runs else None
        ids = [r.id for r in reversed(all_runs)]
        running = gr.update(interactive=False)
        return gr.update(choices=ids, value=newest), plot_update(project, newest), runs_table(project), running

    def do_mask(project_name, line, *values):
        project = open_project(root, project_name)
        try:
            from ftstudio.train.preview import mask_preview
        except ImportError:
            return None, "The pre-flight needs the training stage (ftstudio.train)."
        try:
            settings = _request(project, values, None).stage_settings(project)
        except FtError as exc:
            return None, describe(exc)
        base_model = project.settings().base_model.model
        if not base_model:
            return None, "Choose a base model first (tab 2)."
        try:
            chosen = number_text(str(line)) if line not in (None, "") else None
            if chosen is not None and not isinstance(chosen, int):
                return None, f"Data line: {line!r} is not a line number; leave it empty for the first example."
            shown = mask_preview(project, settings, base_model, chosen)
        except FtError as exc:
            return None, describe(exc)
        segments = [(text, "trained" if trained else None) for text, trained in shown.segments]
        note = f"Line {shown.line}: {shown.tokens} tokens, {shown.trained_tokens} trained" + (
            " · **truncated** to max_seq_length" if shown.truncated else ""
        )
        return segments, note

    def do_probe(project_name, resume_id, *values):
        project = open_project(root, project_name)
        try:
            request = _request(project, values, None, probe_only=True)
        except FtError as exc:
            return f"⚠ Not started: {describe(exc)}"
        return start_request(registry, project_name, request)

    def probe_view(project_name, job_id):
        result = registry.get(project_name, job_id).result
        probe = result.get("probe") if isinstance(result, dict) else None
        if not probe:
            return gr.update()
        examples = result.get("examples") or {}
        truncated = f" · {examples.get('truncated')} examples truncated" if examples.get("truncated") else ""
        return (
            f"Probe: {probe.get('seconds_per_step')} s per step, peak memory {probe.get('peak_memory_mb')} MB "
            f"({probe.get('memory_kind')}); predicted **{probe.get('predicted_total_s')} s** for "
            f"{probe.get('total_steps')} steps{truncated}."
        )

    def show_run(project_name, run_id):
        if not project_name:
            return gr.update(), gr.update(), gr.update()
        project = open_project(root, project_name)
        return plot_update(project, run_id), eval_view(project, run_id), card_view(project, run_id)

    def run_eval(project_name, run_id, judge):
        """The card of the run shown; a judge model typed here is for this card only (project.toml keeps its own)."""
        try:
            chosen = (judge or "").strip() or None
            request = EvaluateRequest.build(run=run_id or None, overrides={"judge_model": chosen})
        except FtError as exc:
            return f"⚠ Not started: {describe(exc)}"
        return start_request(registry, project_name, request)

    preview_inputs = [ctx.project, resume, *inputs]
    for comp in (ctx.project, resume, *inputs):
        comp.change(show_preview, preview_inputs, [preview], show_progress="hidden", queue=False)
    outputs = [*inputs, what, resume, shown_run, runs, plot, comparison, card_md, card_plot]
    ctx.project.change(load, [ctx.project], outputs)
    ctx.demo.load(load, [ctx.project], outputs)
    ctx.tab.select(lambda name: load(name)[len(inputs) :] if name else [gr.update()] * 8, [ctx.project],
                   outputs[len(inputs) :])  # the facts only: the form keeps what was typed  # fmt: skip
    reload_runs.click(load, [ctx.project], outputs, api_name="train_refresh")
    start.click(run_train, preview_inputs, [started], api_name="train")

    def after_job(project_name, job_id):
        # Results only: the settings the user may be editing stay as they are.
        kept = [gr.update()] * len(inputs)
        return [*kept, *load(project_name)[len(inputs) :], probe_view(project_name, job_id)]

    panel.wire(ctx.timer, ctx.project, after_job, [*outputs, probe_note])
    ctx.timer.tick(live, [ctx.project, shown_run], [shown_run, plot, runs, start], show_progress="hidden")
    shown_run.input(show_run, [ctx.project, shown_run], [plot, comparison, card_md])
    evaluate.click(run_eval, [ctx.project, shown_run, judge_model], [card_started], api_name="make_card")

    def after_card(project_name, job_id):
        project = open_project(root, project_name)
        state = registry.get(project_name, job_id)
        run_id = (state.result or {}).get("run") if isinstance(state.result, dict) else None
        return card_view(project, run_id), card_plot_update(project)

    card_panel.wire(ctx.timer, ctx.project, after_card, [card_md, card_plot])
    show_mask.click(do_mask, [ctx.project, example_line, *inputs], [mask, mask_note], api_name="train_mask")
    probe.click(do_probe, preview_inputs, [started], api_name="train_probe")

    def loss_points(project_name: str, run_id: str | None = None) -> list[dict]:
        """The plotted points (step, loss, series) of a run: what the browser shows, for scripts and tests."""
        return loss_frame(open_project(root, project_name), run_id).to_dict("records")

    gr.api(loss_points, api_name="loss_points")

    def card_bars(project_name: str) -> list[dict]:
        """The bar chart's points (run, condition, accuracy %): what the browser shows, for scripts and tests."""
        return card_frame(open_project(root, project_name)).to_dict("records")

    gr.api(card_bars, api_name="card_bars")
