"""`--to-ollama` against a local server speaking Ollama's blob and create API, digest checked as Ollama does."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class FakeOllama(ThreadingHTTPServer):
    """Ollama's /api/blobs/<digest> (HEAD, POST with digest check) and /api/create (stream false)."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.blobs: dict[str, bytes] = {}
        self.created: list[dict] = []
        self.requests: list[tuple[str, str]] = []
        self.refuse_create: str | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: FakeOllama

    def log_message(self, *args):
        pass

    def _reply(self, status: int, body: dict | None = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_HEAD(self):
        self.server.requests.append(("HEAD", self.path))
        digest = self.path.removeprefix("/api/blobs/")
        self._reply(200 if digest in self.server.blobs else 404)

    def do_POST(self):
        self.server.requests.append(("POST", self.path))
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path.startswith("/api/blobs/"):
            digest = self.path.removeprefix("/api/blobs/")
            if "sha256:" + hashlib.sha256(body).hexdigest() != digest:
                return self._reply(400, {"error": "digest mismatch"})
            self.server.blobs[digest] = body
            return self._reply(201)
        if self.path == "/api/create":
            request = json.loads(body)
            missing = [d for d in request.get("files", {}).values() if d not in self.server.blobs]
            if self.server.refuse_create:
                return self._reply(400, {"error": self.server.refuse_create})
            if missing or not request.get("model"):
                return self._reply(400, {"error": f"missing blobs {missing}"})
            self.server.created.append(request)
            return self._reply(200, {"status": "success"})
        self._reply(404, {"error": "not found"})


@pytest.fixture
def fake_ollama():
    server = FakeOllama()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_to_ollama_uploads_the_blob_once_and_creates_the_model(cli, trained_project, fake_ollama):
    project = trained_project("qwen2")
    project.update_settings("train", system_prompt="You answer like a patient tutor.")
    env = {"OLLAMA_HOST": fake_ollama.host}
    result = cli("export", "demo", "--format", "gguf", "--quant", "q8_0", "--no-verify", "--to-ollama", "tutor:v1",
                 "--json", env=env)  # fmt: skip
    assert result.code == 0, result.stderr
    gguf_path = project.exports_dir / "demo-run-1-q8_0.gguf"
    digest = "sha256:" + hashlib.sha256(gguf_path.read_bytes()).hexdigest()
    assert fake_ollama.blobs == {digest: gguf_path.read_bytes()}
    [created] = fake_ollama.created
    assert created["model"] == "tutor:v1" and created["files"] == {gguf_path.name: digest}
    assert created["system"] == "You answer like a patient tutor."
    assert created["parameters"]["stop"] == ["<|im_end|>", "<|endoftext|>"]
    modelfile = (project.exports_dir / "demo-run-1-q8_0.Modelfile").read_text()
    assert f'TEMPLATE """{created["template"]}"""' in modelfile
    assert result.json()["ollama"] == {"model": "tutor:v1", "host": f"http://{fake_ollama.host}", "digest": digest,
                                       "uploaded": True}  # fmt: skip

    # Same file again: HEAD finds the blob, nothing is uploaded twice.
    again = cli("export", "demo", "--format", "gguf", "--quant", "q8_0", "--no-verify", "--to-ollama", "tutor:v2",
                "--json", env=env)  # fmt: skip
    assert again.code == 0, again.stderr
    assert [r for r in fake_ollama.requests if r[0] == "POST" and r[1].startswith("/api/blobs")] == [
        ("POST", f"/api/blobs/{digest}")
    ]
    assert again.json()["ollama"]["uploaded"] is False and len(fake_ollama.created) == 2


def test_without_ollama_exit_3_with_the_create_command(cli, trained_project):
    trained_project("llama")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = cli("export", "demo", "--format", "gguf", "--quant", "f16", "--no-verify", "--to-ollama", "tutor",
                 env={"OLLAMA_HOST": f"127.0.0.1:{port}"})  # fmt: skip
    assert result.code == 3
    assert f"no Ollama answering at http://127.0.0.1:{port}" in result.stderr
    assert "ollama create tutor -f" in result.stderr and "demo-run-1-f16.Modelfile" in result.stderr


def test_ollama_refusing_the_model_is_an_error_with_its_reason(cli, trained_project, fake_ollama):
    trained_project("mistral")
    fake_ollama.refuse_create = "invalid model name"
    result = cli("export", "demo", "--format", "gguf", "--quant", "q4_0", "--no-verify", "--to-ollama", "Bad Name",
                 env={"OLLAMA_HOST": f"http://{fake_ollama.host}"})  # fmt: skip
    assert result.code == 2
    assert "could not create 'Bad Name': 400 invalid model name" in result.stderr
