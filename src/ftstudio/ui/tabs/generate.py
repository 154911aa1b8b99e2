"""Tab placeholder while the generate stage lands."""

from __future__ import annotations

import gradio as gr


def build(ctx) -> None:
    gr.Markdown("Coming with the generate stage.")
