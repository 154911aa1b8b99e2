"""The project bar: pick a project or create one; every tab below works on the picked project."""

from __future__ import annotations

import gradio as gr

from ftstudio.errors import FtError
from ftstudio.project import Project, list_projects
from ftstudio.ui.common import describe


def build(root, demo: gr.Blocks) -> tuple[gr.Dropdown, gr.Markdown]:
    """Lay out the bar; return the project dropdown (every tab's first input) and the bar's message line."""
    names = list_projects(root)
    with gr.Row():
        project = gr.Dropdown(
            choices=names,
            value=names[0] if names else None,
            label="Project",
            info=f"Projects under {root / 'projects'}",
            scale=3,
        )
        new_name = gr.Textbox(label="New project", placeholder="e.g. math-tutor", scale=2)
        create = gr.Button("Create project", variant="primary", scale=0, min_width=160)
    message = gr.Markdown("" if names else "Create a project to begin.")
    # The browser remembers the last project, so a reload (or a new tab) comes back to it.
    remembered = gr.BrowserState(None, storage_key="ftstudio-project")

    def create_project(name: str):
        try:
            created = Project.create(name.strip(), root)
        except FtError as exc:
            return gr.update(), describe(exc), name
        return (
            gr.update(choices=list_projects(root), value=created.name),
            f"Created project **{created.name}** at `{created.dir}`.",
            "",
        )

    def refresh_list(current: str | None):
        names = list_projects(root)
        return gr.update(choices=names, value=current if current in names else (names[0] if names else None))

    create.click(create_project, [new_name], [project, message, new_name], api_name="create_project")
    new_name.submit(create_project, [new_name], [project, message, new_name])

    def restore(last: str | None):
        names = list_projects(root)
        hint = "" if names else "Create a project to begin."
        if last in names:
            return gr.update(choices=names, value=last), hint
        return gr.update(choices=names), hint

    project.focus(refresh_list, [project], [project], queue=False)
    project.change(lambda name: name, [project], [remembered], queue=False)
    demo.load(restore, [remembered], [project, message])
    return project, message
