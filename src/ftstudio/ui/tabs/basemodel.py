"""Tab 2, Base model: the curated catalog with this machine's verdicts, a check of any hub id or local folder,
and saving the choice into the project."""

from __future__ import annotations

import gradio as gr

from ftstudio.basemodels.settings import BaseModelSettings
from ftstudio.ui.common import open_project, save_section, widget


def build(ctx) -> None:
    root = ctx.root
    gr.Markdown(
        "The **base model** is the model that gets fine-tuned: a Hugging Face id (e.g. `Qwen/Qwen2.5-0.5B-Instruct`) "
        "or a local folder holding one."
    )
    with gr.Row():
        model = widget(BaseModelSettings, "model", None, scale=4, elem_id="base-model-id")
        trust = widget(BaseModelSettings, "trust_remote_code", False, scale=1)
    save = gr.Button("Use this model", variant="primary")
    saved = gr.Markdown()

    def load(project_name):
        if not project_name:
            return gr.update(), gr.update(), ""
        current = open_project(root, project_name).settings().base_model
        chosen = f"Current base model: `{current.model}`" if current.model else "No base model chosen yet."
        return current.model or "", current.trust_remote_code, chosen

    def do_save(project_name, model_id, trust_code):
        project = open_project(root, project_name)
        chosen = save_section(
            project, "base_model", BaseModelSettings, {"model": model_id, "trust_remote_code": trust_code}
        )
        return f"Saved: the base model of **{project.name}** is `{chosen.model}`."

    ctx.project.change(load, [ctx.project], [model, trust, saved])
    ctx.demo.load(load, [ctx.project], [model, trust, saved])
    save.click(do_save, [ctx.project, model, trust], [saved], api_name="save_base_model")
