"""`ftstudio ui`: serve the studio in the browser."""

from __future__ import annotations

import ipaddress
from typing import Annotated

import typer

from ftstudio.cli.common import RootOpt, err
from ftstudio.project import resolve_root


def register(app: typer.Typer) -> None:
    app.command("ui")(ui)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def ui(
    root: RootOpt = None,
    host: Annotated[str, typer.Option(help="Address to listen on. Keep 127.0.0.1 unless you mean to share.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 7860,
    example: Annotated[
        bool, typer.Option("--example", help="Create (once) the 'example' project: a document, data, a tiny model.")
    ] = False,
    json: Annotated[bool, typer.Option("--json", hidden=True, help="Accepted for symmetry; the UI prints a URL.")] = (
        False
    ),
) -> None:
    """Open the studio: a web page with one tab per step, on http://HOST:PORT."""
    workspace = resolve_root(root)
    if not is_loopback(host):
        err.print(
            f"[bold yellow]warning:[/] listening on {host}: anyone who can reach this machine can read your "
            "projects and start jobs. Use --host 127.0.0.1 to keep it to this machine.",
            markup=True,
        )
    if example:
        from ftstudio.ui.example import ensure_example

        project = ensure_example(workspace, progress=lambda e: err.print(f"example: {e.message}"))
        err.print(f"example project ready: {project.dir}")
    from ftstudio.ui.app import launch

    launch(workspace, host, port)
