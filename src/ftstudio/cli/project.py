"""`ftstudio init` and `ftstudio projects`: the workspace."""

from pathlib import Path

import click
from rich.markup import escape

from ftstudio.cli.common import emit, json_option, out, root_option
from ftstudio.project import Project, list_projects, resolve_root


@click.command("init")
@click.argument("name", help="Project name: letters, digits, '-', '_', '.', not starting with '-' or '.'.")
@root_option
@json_option
def init(name: str, root: Path | None, json: bool) -> None:
    """Create a project: projects/NAME/ with default settings in project.toml."""
    project = Project.create(name, root)
    emit(
        {"name": project.name, "path": str(project.dir)},
        json,
        lambda: out.print(f"Created project [bold]{project.name}[/] at {escape(str(project.dir))}", markup=True),
    )


@click.command("projects")
@root_option
@json_option
def projects(root: Path | None, json: bool) -> None:
    """List the projects in the workspace."""
    names = list_projects(root)
    emit(
        {"root": str(resolve_root(root)), "projects": names},
        json,
        lambda: out.print("\n".join(names) if names else "No projects yet: create one with `ftstudio init NAME`."),
    )
