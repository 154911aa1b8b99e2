"""Tab 2, Base model: the curated catalog with this machine's verdicts, a check of any hub id or local folder
(verdict, reasons, suggestions), and saving the choice into the project (checked first, as `ftstudio models use`).

A .gguf file or ollama:NAME that is not imported yet is saved through a background `ftstudio models use` job: the
import (dequantizing, seconds to minutes) streams its progress into the job panel; once imported, it checks at once.
"""

from __future__ import annotations

import html

import gradio as gr

from ftstudio.basemodels.settings import BaseModelSettings
from ftstudio.errors import FtError
from ftstudio.ui.common import JobPanel, describe, open_project, start_request, widget

CATALOG_COLUMNS = ["model", "size (B)", "context", "licence", "verdict", "why"]


def _plan(project) -> dict:
    """What the checks plan for: the project's training settings, as on every face (CheckRequest.plan)."""
    from ftstudio.requests import CheckRequest

    return CheckRequest.build().plan(project)


def catalog_rows(plan: dict) -> list[list]:
    from ftstudio.basemodels.checks import catalog_fits

    rows = []
    for entry, result in catalog_fits(**plan):
        rows.append([entry.id, entry.params, entry.context, entry.license, result.verdict, "; ".join(result.reasons)])
    return rows


def render_check(result) -> str:
    """A check's verdict as the user should read it: the verdict, why, what to do, and the memory estimates."""
    badge = {"ok": "**ok**: can be trained and exported here", "warn": "**usable, with warnings**",
             "error": "**cannot be trained here**"}[result.verdict]  # fmt: skip
    lines = [f"`{html.escape(result.model)}`: {badge}"]
    lines += [f"- {html.escape(r)}" for r in result.reasons]
    if result.suggestions:
        lines.append("\nWhat to do:")
        lines += [f"- {html.escape(s)}" for s in result.suggestions]
    if result.estimates:
        lines.append("\nMemory to train (estimate):")
        for method, est in result.estimates.items():
            lines.append(f"- {method} on {est.device}: about {est.to_dict()['total_gib']} GiB")
    lines.append(f"\nThis machine: {html.escape(result.hardware.describe())}")
    return "\n".join(lines)


USE_COMMAND = "models use"


def not_imported(spec: str) -> str | None:
    """For a GGUF spec not in the cache yet, what to do (Use this model imports it as a job); None otherwise.
    Raises the import's own refusal when the spec names nothing (a missing file, an Ollama model not installed)."""
    from ftstudio.basemodels.gguf_import import cached_folder, is_gguf_spec, locate

    if not is_gguf_spec(spec) or cached_folder(spec) is not None:
        return None
    locate(spec)
    return (f"`{html.escape(spec)}` is a GGUF that is not imported yet. **Use this model** imports it in the "
            "background (dequantized once into ftstudio's cache: seconds to minutes), then checks and saves it; "
            "after that, Check answers at once.")  # fmt: skip


def render_saved(result) -> str:
    """The verdict of a finished `models use` job, from its JSON document."""
    if not isinstance(result, dict) or "verdict" not in result:
        return ""
    badge = {"ok": "**ok**", "warn": "**usable, with warnings**", "error": "**saved despite errors**"}
    lines = [f"Saved: `{html.escape(str(result.get('model')))}`: {badge[result['verdict']]}"]
    lines += [f"- {html.escape(r)}" for r in result.get("reasons", [])]
    if result.get("suggestions"):
        lines.append("\nWhat to do:")
        lines += [f"- {html.escape(s)}" for s in result["suggestions"]]
    return "\n".join(lines)


def build(ctx) -> None:
    root = ctx.root
    gr.Markdown(
        "The **base model** is the model that gets fine-tuned: a Hugging Face id (e.g. `Qwen/Qwen2.5-0.5B-Instruct`), "
        "a local folder holding one, a `.gguf` file, or an Ollama model as `ollama:NAME[:TAG]` (read from Ollama's "
        "model store; a GGUF is dequantized once into ftstudio's cache). The verdicts use this project's training "
        "settings."
    )
    with gr.Accordion("Catalog: curated models and whether they fit this machine", open=True):
        catalog = gr.Dataframe(
            headers=CATALOG_COLUMNS,
            interactive=False,
            wrap=True,
            max_height=320,
            column_widths=["24%", "7%", "8%", "10%", "7%", "44%"],
        )
        gr.Markdown("Click a row to put its id in the field below.")
    current = gr.Markdown()
    with gr.Row():
        model = widget(BaseModelSettings, "model", None, scale=4, elem_id="base-model-id")
        trust = widget(BaseModelSettings, "trust_remote_code", False, scale=1)
    with gr.Row():
        check = gr.Button("Check")
        save = gr.Button("Use this model", variant="primary")
    verdict = gr.Markdown(elem_id="base-model-verdict")
    panel = JobPanel(ctx.registry, USE_COMMAND)

    def load(project_name):
        if not project_name:
            return gr.update(), gr.update(), gr.update(), ""
        project = open_project(root, project_name)
        chosen = project.settings().base_model
        try:
            rows = catalog_rows(_plan(project))
        except ImportError:
            rows = []
        note = f"Current base model: `{chosen.model}`" if chosen.model else "No base model chosen yet."
        return rows, chosen.model or "", chosen.trust_remote_code, note

    def pick(evt: gr.SelectData, rows):
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        data = rows.values.tolist() if hasattr(rows, "values") else rows
        return data[row][0] if 0 <= row < len(data) else gr.update()

    def do_check(project_name, spec, trust_code):
        project = open_project(root, project_name)
        if not spec or not spec.strip():
            return "Type a hub id or a local folder, or pick a catalog row."
        try:
            if (waiting := not_imported(spec.strip())) is not None:
                return waiting
            import ftstudio

            # The API's check, planned with the project's [train] settings: the CLI's `models check --project`.
            return render_check(ftstudio.check_model(project, model=spec.strip(), trust_remote_code=bool(trust_code)))
        except ImportError:
            return "Checking needs the base-model stage (ftstudio.basemodels.checks)."
        except FtError as exc:
            return describe(exc)

    def do_save(project_name, spec, trust_code):
        project = open_project(root, project_name)
        if not spec or not spec.strip():
            return "Type a hub id or a local folder first.", gr.update()
        try:
            if not_imported(spec.strip()) is not None:
                from ftstudio.requests import UseModelRequest

                request = UseModelRequest.build(model=spec.strip(), trust_remote_code=bool(trust_code))
                return start_request(ctx.registry, project.name, request), gr.update()
            from ftstudio.basemodels.choice import use_model

            result = use_model(project, spec.strip(), trust_remote_code=trust_code, **_plan(project))
        except ImportError:
            return "Saving a checked choice needs the base-model stage (ftstudio.basemodels.choice).", gr.update()
        except FtError as exc:
            return describe(exc), gr.update()
        saved = project.settings().base_model.model
        return f"Saved: the base model of **{project.name}** is `{saved}`.\n\n{render_check(result)}", (
            f"Current base model: `{saved}`"
        )

    outputs = [catalog, model, trust, current]
    ctx.project.change(load, [ctx.project], outputs)
    ctx.demo.load(load, [ctx.project], outputs)
    catalog.select(pick, [catalog], [model])
    check.click(do_check, [ctx.project, model, trust], [verdict], api_name="check_model")
    save.click(do_save, [ctx.project, model, trust], [verdict, current], api_name="save_base_model")

    def after_job(project_name, job_id):
        result = ctx.registry.get(project_name, job_id).result
        saved = open_project(root, project_name).settings().base_model.model
        note = f"Current base model: `{saved}`" if saved else "No base model chosen yet."
        return render_saved(result), note

    panel.wire(ctx.timer, ctx.project, after_job, [verdict, current])

    def catalog_api(project_name: str) -> list[list]:
        """The catalog rows with this machine's verdicts for the project's training settings."""
        return catalog_rows(_plan(open_project(root, project_name)))

    gr.api(catalog_api, api_name="catalog")
