"""Resolving a hub id online against a local server that answers as the hub's file endpoint does.

It serves a kit model's files under /{org}/{name}/resolve/{revision}/{file} (HEAD with X-Repo-Commit, ETag and
Content-Length; GET with the bytes; 404 with X-Error-Code RepoNotFound / EntryNotFound), records every request,
and so shows that only config and tokenizer files are ever asked for.
"""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ftstudio.basemodels.checks import check_model
from ftstudio.errors import NotFound

COMMIT = "fedcba9876543210fedcba9876543210fedcba98"


@pytest.fixture
def fake_hub(tiny_model, monkeypatch):
    repos: dict[str, Path] = {"acme/Tiny-Qwen": tiny_model("qwen2")}
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _answer(self, with_body: bool) -> None:
            requests.append(f"{self.command} {self.path}")
            parts = self.path.split("?")[0].strip("/").split("/")
            repo, filename = "/".join(parts[:2]), "/".join(parts[4:])
            if repo not in repos or parts[2:3] != ["resolve"]:
                return self._error("RepoNotFound", "Repository not found")
            path = repos[repo] / filename
            if not path.is_file():
                return self._error("EntryNotFound", "Entry not found")
            data = path.read_bytes()
            self.send_response(200)
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("ETag", '"' + hashlib.sha1(data).hexdigest() + '"')
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if with_body:
                self.wfile.write(data)

        def _error(self, code: str, message: str) -> None:
            body = ('{"error": "' + message + '"}').encode()
            self.send_response(404)
            self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", message)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command == "GET":
                self.wfile.write(body)

        def do_HEAD(self):
            self._answer(False)

        def do_GET(self):
            self._answer(True)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    yield requests
    server.shutdown()
    server.server_close()


def test_online_hub_id_fetches_only_config_and_tokenizer_files(fake_hub, tmp_path, cpu_machine):
    result = check_model("acme/Tiny-Qwen", cache_dir=str(tmp_path / "cache"), hardware=cpu_machine)
    assert result.verdict == "ok" and result.info["source"] == "hub" and result.info["offline_reason"] is None
    assert result.info["chat_template"]["renders"]
    asked = {r.split(" ")[1].split("/")[-1] for r in fake_hub}
    assert "config.json" in asked and "tokenizer.json" in asked
    assert not any(name.endswith((".safetensors", ".bin", ".pt", ".gguf")) for name in asked)
    snapshot = tmp_path / "cache" / "models--acme--Tiny-Qwen" / "snapshots" / COMMIT
    assert (snapshot / "config.json").is_file() and not (snapshot / "model.safetensors").exists()


def test_online_unknown_repository_is_not_found(fake_hub, tmp_path):
    with pytest.raises(NotFound, match="the hub has no model 'acme/Nope'") as caught:
        check_model("acme/Nope", cache_dir=str(tmp_path / "cache"))
    assert caught.value.exit_code == 2
