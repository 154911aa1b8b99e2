"""`ftstudio init` and `ftstudio projects`: the workspace."""

from typing import Annotated

import typer
from rich.markup import escape

from ftstudio.cli.common import JsonOpt, RootOpt, emit, out
from ftstudio.project import Project, list_projects, resolve_root


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("projects")(projects)


def init(
    name: Annotated[
        str, typer.Argument(help="Project name: letters, digits, '-', '_', '.', not starting with '-' or '.'.")
    ],
    root: RootOpt = None,
    json: JsonOpt = False,
) -> None:
    """Create a project: projects/NAME/ with default settings in project.toml."""
    project = Project.create(name, root)
    emit(
        {"name": project.name, "path": str(project.dir)},
        json,
        lambda: out.print(f"Created project [bold]{project.name}[/] at {escape(str(project.dir))}", markup=True),
    )


def projects(root: RootOpt = None, json: JsonOpt = False) -> None:
    """List the projects in the workspace."""
    names = list_projects(root)
    emit(
        {"root": str(resolve_root(root)), "projects": names},
        json,
        lambda: out.print("\n".join(names) if names else "No projects yet: create one with `ftstudio init NAME`."),
    )
