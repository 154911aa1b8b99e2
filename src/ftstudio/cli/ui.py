"""`ftstudio ui`: serve the studio in the browser."""

import ipaddress
from typing import Annotated

import typer

from ftstudio.cli.common import RootOpt, err
from ftstudio.errors import BadInput
from ftstudio.project import resolve_root
from ftstudio.ui.hosts import allowed_hosts

AUTH_ENV = "FTSTUDIO_UI_AUTH"


def register(app: typer.Typer) -> None:
    app.command("ui")(ui)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_auth(value: str) -> tuple[str, str]:
    """USER:PASSWORD as a pair; BadInput when either side is empty (the password may itself hold ':')."""
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise BadInput(
            "--auth (or FTSTUDIO_UI_AUTH) must be USER:PASSWORD, both non-empty",
            hint=f"e.g. export {AUTH_ENV}='me:a-long-passphrase' (the environment keeps it out of `ps`)",
        )
    return user, password


def ui(
    root: RootOpt = None,
    host: Annotated[str, typer.Option(help="Address to listen on. Keep 127.0.0.1 unless you mean to share.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 7860,
    auth: Annotated[
        str | None,
        typer.Option(
            "--auth",
            envvar=AUTH_ENV,
            show_default=False,
            help=f"USER:PASSWORD: require this login (Gradio's own). Prefer ${AUTH_ENV}: an argument shows in `ps`.",
        ),
    ] = None,
    allow_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-host",
            show_default=False,
            help="Also answer requests for this Host name (repeatable; '*.example.org' allowed). Others are refused "
            "(DNS rebinding); the bound address, localhost and 127.0.0.1 always work.",
        ),
    ] = None,
    insecure_no_auth: Annotated[
        bool,
        typer.Option("--insecure-no-auth", help="Listen on a non-loopback address without a login (trusted networks)."),
    ] = False,
    example: Annotated[
        bool, typer.Option("--example", help="Create (once) the 'example' project: a guide, pairs, SmolLM2-135M.")
    ] = False,
    json: Annotated[bool, typer.Option("--json", hidden=True, help="Accepted for symmetry; the UI prints a URL.")] = (
        False
    ),
) -> None:
    """Open the studio: a web page with one tab per step, on http://HOST:PORT (see docs/security.md to share it)."""
    workspace = resolve_root(root)
    login = parse_auth(auth) if auth is not None else None
    if not is_loopback(host):
        if login is None and not insecure_no_auth:
            raise BadInput(
                f"refusing to listen on {host} without a login: anyone who can reach this machine could read your "
                "projects and start jobs",
                hint=f"set {AUTH_ENV}=USER:PASSWORD (or pass --auth), or --insecure-no-auth on a trusted network; "
                "--host 127.0.0.1 keeps it to this machine",
            )
        if login is None:
            err.print(f"warning: listening on {host} with no login (--insecure-no-auth)")
        if not allow_host:
            names = ", ".join(allowed_hosts(host, []))
            err.print(f"note: only requests for {names} are answered; add --allow-host NAME for the name others use "
                      "to reach this machine")  # fmt: skip
    if example:
        from ftstudio.example import ensure_example

        project = ensure_example(workspace, progress=lambda e: err.print(f"example: {e.message}"))
        err.print(f"example project ready: {project.dir}")
    from ftstudio.ui.app import launch

    launch(workspace, host, port, auth=login, allowed_hosts=allowed_hosts(host, allow_host or []))
