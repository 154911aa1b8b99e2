"""Exposing the studio safely (issue 12, item 9): a login through Gradio's own auth, no wildcard bind without one,
and a Host header check against DNS rebinding, all through real HTTP requests to a launched `ftstudio ui`."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
import urllib.parse

import pytest

AUTH = "alice:s3cret:with-colon"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port: int, method: str, path: str, host: str | None = None, body: dict | None = None, cookie: str = ""):
    """One HTTP request to 127.0.0.1:port with the given Host header: (status, headers, body text)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Host": host or f"127.0.0.1:{port}"}
    if cookie:
        headers["Cookie"] = cookie
    data = None
    if body is not None:
        data = urllib.parse.urlencode(body)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    try:
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.getheaders(), resp.read().decode("utf-8", "replace")
    finally:
        conn.close()


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """`ftstudio ui` on loopback with a login from FTSTUDIO_UI_AUTH and one extra allowed host name."""
    root = tmp_path_factory.mktemp("ws")
    port = free_port()
    env = {**os.environ, "NO_COLOR": "1", "GRADIO_ANALYTICS_ENABLED": "False", "FTSTUDIO_UI_AUTH": AUTH}
    log = (root / "ui.log").open("wb")
    argv = [sys.executable, "-m", "ftstudio", "ui", "--root", str(root), "--port", str(port)]
    argv += ["--allow-host", "studio.lan"]
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert proc.poll() is None, (root / "ui.log").read_text()
        try:
            request(port, "GET", "/")
            break
        except OSError:
            time.sleep(0.3)
    yield port
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_the_studio_requires_the_login(guarded):
    port = guarded
    status, _, _ = request(port, "GET", "/config")
    assert status == 401  # the page's config needs the login
    assert request(port, "GET", "/gradio_api/info")[0] == 401  # and so does the API
    status, _, _ = request(port, "POST", "/login", body={"username": "alice", "password": "wrong"})
    assert status in (400, 401)
    status, headers, _ = request(port, "POST", "/login", body={"username": "alice", "password": "s3cret:with-colon"})
    assert status == 200
    cookies = "; ".join(v.split(";", 1)[0] for k, v in headers if k.lower() == "set-cookie")
    assert cookies
    status, _, body = request(port, "GET", "/config", cookie=cookies)
    assert status == 200 and "Knowledge" in body


def test_a_foreign_host_header_is_refused(guarded):
    port = guarded
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example", "0.0.0.0"):
        status, _, body = request(port, "GET", "/", host=host)
        assert status == 400 and "--allow-host" in body, host
    status, _, body = request(port, "POST", "/login", host="evil.example", body={"username": "alice", "password": "x"})
    assert status == 400
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "studio.lan", f"STUDIO.lan:{port}"):
        status, _, _ = request(port, "GET", "/", host=host)
        assert status == 200, host


def test_a_wildcard_bind_needs_a_login_or_an_explicit_opt_out(cli, workspace):
    refused = cli("ui", "--host", "0.0.0.0", env={"FTSTUDIO_UI_AUTH": ""})
    assert refused.code == 2 and "Traceback" not in refused.stderr
    assert "refusing to listen on 0.0.0.0 without a login" in refused.stderr and "--insecure-no-auth" in refused.stderr
    bad = cli("ui", "--auth", "no-password-here")
    assert bad.code == 2 and "USER:PASSWORD" in bad.stderr
