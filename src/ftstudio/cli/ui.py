"""`ftstudio ui`: serve the studio in the browser."""

import ipaddress
from pathlib import Path

import click

from ftstudio.cli.common import err, root_option
from ftstudio.errors import BadInput
from ftstudio.project import resolve_root
from ftstudio.ui.hosts import allowed_hosts

AUTH_ENV = "FTSTUDIO_UI_AUTH"


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


@click.command("ui")
@root_option
@click.option("--host", default="127.0.0.1", help="Address to listen on. Keep 127.0.0.1 unless you mean to share.")
@click.option("--port", default=7860, help="Port to listen on.")
@click.option(
    "--auth",
    envvar=AUTH_ENV,
    show_envvar=True,
    help=f"USER:PASSWORD: require this login (Gradio's own). Prefer ${AUTH_ENV}: an argument shows in `ps`.",
)
@click.option(
    "--allow-host",
    multiple=True,
    help="Also answer requests for this Host name (repeatable; '*.example.org' allowed). Others are refused (DNS "
    "rebinding); the bound address, localhost and 127.0.0.1 always work.",
)
@click.option(
    "--insecure-no-auth", is_flag=True, help="Listen on a non-loopback address without a login (trusted networks)."
)
@click.option("--example", is_flag=True, help="Create (once) the 'example' project: a guide, pairs, SmolLM2-135M.")
@click.option("--json", is_flag=True, hidden=True, help="Accepted for symmetry; the UI prints a URL.")
def ui(
    root: Path | None,
    host: str,
    port: int,
    auth: str | None,
    allow_host: tuple[str, ...],
    insecure_no_auth: bool,
    example: bool,
    json: bool,
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

    launch(workspace, host, port, auth=login, allowed_hosts=allowed_hosts(host, list(allow_host)))
