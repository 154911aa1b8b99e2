"""The studio answers only requests addressed to it: a Host header check against DNS rebinding.

A web page on another site can make a browser send requests to 127.0.0.1 under its own domain name (after its DNS
answer changes to 127.0.0.1); the only trace is the Host header, which names that domain. So every request whose
Host is not the bound address, a loopback name, or a name the user allowed (`ftstudio ui --allow-host`) is refused.
"""

from __future__ import annotations

import fnmatch


def allowed_hosts(host: str, extra: list[str]) -> list[str]:
    """The Host names the studio bound to `host` answers: that address, the loopback names, and `extra`. A
    wildcard address (0.0.0.0) is no name: browsers reach loopback through it, so it is never allowed."""
    return sorted({host, "localhost", "127.0.0.1", "::1", *extra} - {"0.0.0.0", "::"})


def host_name(header: str) -> str:
    """The name in a Host header, without its port: `[::1]:7860` → `::1`, `Example.org:80` → `example.org`."""
    value = header.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class HostCheck:
    """ASGI middleware: a 400 answer, naming the fix, for a request whose Host is not in `allowed` (names, or
    patterns such as `*.example.org`; `*` allows any)."""

    def __init__(self, app, allowed: list[str]):
        self.app = app
        self.allowed = [a.lower() for a in allowed]

    def allows(self, header: str) -> bool:
        name = host_name(header)
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.allowed)

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        header = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
        if self.allows(header):
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        body = (
            f"Host {header!r} is not served here: start the studio with --allow-host NAME to answer that name.\n"
        ).encode()
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 400, "headers": headers})
        await send({"type": "http.response.body", "body": body})
