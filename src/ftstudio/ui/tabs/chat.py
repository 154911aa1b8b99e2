"""Tab 6, Chat: talk to the fine-tuned model and, beside it, the base model it came from, streaming; optionally
with passages retrieved from the knowledge store put before the question."""

from __future__ import annotations

import html
import threading

import gradio as gr

from ftstudio.errors import FtError
from ftstudio.ui.common import describe, open_project
from ftstudio.ui.tabs.train import _runs

_loaded: dict[str, object] = {}  # one model at a time: (project dir, run id) → ChatModel
_lock = threading.Lock()
_using = threading.Lock()  # one answer at a time: the base answer switches the shared model's adapter off


def chat_model(project, run_id: str | None):
    """The run's base model with its adapter, loaded once and kept until another run is chosen."""
    from ftstudio.train.chat import load_chat, pick_run

    run = pick_run(project, run_id or None)
    key = f"{project.dir}:{run.id}"
    with _lock:
        if key not in _loaded:
            _loaded.clear()
            _loaded[key] = load_chat(project, run.id)
        return _loaded[key]


def shown(text: str) -> str:
    """Text as the chat shows it: Gradio's Chatbot puts a message in the page as HTML even with Markdown off, so
    `<b>` would turn bold; escaped (line breaks kept), a model's text reads exactly as it wrote it."""
    return html.escape(text).replace("\n", "<br>")


def _typed(text: str) -> str:
    return html.unescape(text.replace("<br>", "\n"))


def _plain(messages: list) -> list[dict[str, str]]:
    """Chatbot history as plain {role, content} turns, as they were typed and written (Gradio 6 hands content back
    as a list of parts, in the escaped form `shown` gave it)."""
    turns = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        if m.get("role") in ("user", "assistant") and isinstance(content, str):
            turns.append({"role": m["role"], "content": _typed(content)})
    return turns


def _history(turns: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{"role": t["role"], "content": shown(t["content"])} for t in turns]


def build(ctx) -> None:
    root = ctx.root
    gr.Markdown("Ask the fine-tuned model something, and see what the base model said before training.")
    with gr.Row():
        run = gr.Dropdown(label="Run", info="A completed training run (the newest when empty)", choices=[])
        passages = gr.Number(
            label="Passages from the knowledge store",
            value=0,
            precision=0,
            minimum=0,
            maximum=10,
            info="0: the question alone",
        )
    with gr.Row():
        # Model text is shown as text: `~~`, `#`, `$$` or `<b>` in an answer must not become Markdown, math or HTML
        # (the messages are escaped by `shown`).
        tuned = gr.Chatbot(label="Fine-tuned", height=360, elem_id="chat-tuned", render_markdown=False,
                           latex_delimiters=[])  # fmt: skip
        base = gr.Chatbot(label="Base model", height=360, elem_id="chat-base", render_markdown=False,
                          latex_delimiters=[])  # fmt: skip
    with gr.Row():
        question = gr.Textbox(label="Your message", placeholder="Ask about your documents", scale=5)
        send = gr.Button("Send", variant="primary", scale=1)
    note = gr.Markdown()

    def load(project_name, current=None):
        if not project_name:
            return gr.update()
        project = open_project(root, project_name)
        done = [r.id for r in reversed(_runs(project)) if r.status == "completed"]
        return gr.update(choices=done, value=current if current in done else (done[0] if done else None))

    def respond(project_name, run_id, k, message, tuned_history, base_history):
        """Stream the tuned answer, then the base model's (one model: the adapter is switched off for the base)."""
        project = open_project(root, project_name)
        if not message.strip():
            yield tuned_history, base_history, "Type a message first.", message
            return
        try:
            model = chat_model(project, run_id)
        except ImportError:
            yield tuned_history, base_history, "Chat needs the training stage (ftstudio.train).", message
            return
        except FtError as exc:
            yield tuned_history, base_history, describe(exc), message
            return
        from ftstudio.train.chat import with_passages

        prompt, found = with_passages(project, message, int(k or 0))
        sources = ("Passages from: " + "; ".join(found)) if found else ("No passage matched." if k else "")
        tuned_before, base_before = _plain(tuned_history), _plain(base_history)
        tuned_turns = [*tuned_before, {"role": "user", "content": message}, {"role": "assistant", "content": ""}]
        base_turns = [*base_before, {"role": "user", "content": message}, {"role": "assistant", "content": ""}]
        with _using:
            for piece in model.stream([*tuned_before, {"role": "user", "content": prompt}]):
                tuned_turns[-1]["content"] += piece
                yield _history(tuned_turns), _history(base_turns), sources, ""
            with model.model.disable_adapter():
                for piece in model.stream([*base_before, {"role": "user", "content": prompt}]):
                    base_turns[-1]["content"] += piece
                    yield _history(tuned_turns), _history(base_turns), sources, ""

    def clear(project_name):
        """Nothing of another project stays on screen: its conversation and passages go."""
        return load(project_name), [], [], ""

    ctx.project.change(clear, [ctx.project], [run, tuned, base, note])
    ctx.tab.select(load, [ctx.project, run], [run])
    run.focus(load, [ctx.project, run], [run], queue=False)  # runs that completed since the page loaded
    ctx.demo.load(load, [ctx.project], [run])
    inputs = [ctx.project, run, passages, question, tuned, base]
    send.click(respond, inputs, [tuned, base, note, question], api_name="chat")
    question.submit(respond, inputs, [tuned, base, note, question])
