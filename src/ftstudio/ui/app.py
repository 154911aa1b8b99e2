"""The studio's page: the project bar on top, then one tab per pipeline step (`ftstudio ui`).

Every tab is a module in `ftstudio.ui.tabs` with `build(ctx)`; they share the project dropdown, one timer that
polls background jobs, and the job registry of the workspace.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from ftstudio.jobs import JobRegistry, registry
from ftstudio.project import resolve_root
from ftstudio.ui.tabs import basemodel, chat, export, generate, knowledge, project_bar, train

POLL_S = 1.0
TABS = (
    ("1 Knowledge", knowledge),
    ("2 Base model", basemodel),
    ("3 Generate", generate),
    ("4 Train", train),
    ("5 Export", export),
    ("6 Chat", chat),
)
CSS = """
.job-status progress { height: 0.8em; }
footer { display: none !important; }
"""


@dataclass
class Context:
    """What every tab's `build` gets: the workspace, its job registry, and the shared widgets."""

    root: Path
    registry: JobRegistry
    demo: gr.Blocks
    project: gr.Dropdown
    timer: gr.Timer
    tab: gr.Tab | None = None  # the tab being built: its `select` refreshes what it shows


def build_app(root: Path | str | None = None) -> gr.Blocks:
    """The whole page for the workspace at `root` (resolved like the CLI's --root)."""
    root = resolve_root(root)
    (root / "projects").mkdir(parents=True, exist_ok=True)
    with gr.Blocks(title="ftstudio", analytics_enabled=False) as demo:
        gr.Markdown("# ftstudio\nYour documents → a fine-tuned model, on this machine.")
        project, _ = project_bar.build(root, demo)
        timer = gr.Timer(POLL_S)
        ctx = Context(root, registry(root), demo, project, timer)
        with gr.Tabs():
            for label, module in TABS:
                with gr.Tab(label, id=module.__name__.rsplit(".", 1)[-1]) as tab:
                    ctx.tab = tab
                    module.build(ctx)
    return demo


def launch(
    root: Path | str | None,
    host: str,
    port: int,
    *,
    auth: tuple[str, str] | None = None,
    allowed_hosts: list[str] | None = None,
    **kwargs,
) -> None:
    """Serve the studio until interrupted: behind Gradio's login when `auth` is (user, password), answering only
    requests whose Host is in `allowed_hosts` (default: the bound address and loopback names; see ui/hosts.py)."""
    from starlette.middleware import Middleware

    from ftstudio.ui.hosts import HostCheck
    from ftstudio.ui.hosts import allowed_hosts as default_hosts

    allowed = allowed_hosts or default_hosts(host, [])
    demo = build_app(root)
    demo.queue(default_concurrency_limit=8).launch(
        server_name=host, server_port=port, css=CSS, footer_links=[], show_error=True, auth=auth,
        app_kwargs={"middleware": [Middleware(HostCheck, allowed=allowed)]}, **kwargs,
    )  # fmt: skip
