"""Installing a GGUF into a running Ollama through its REST API, so `ollama run NAME` works at once.

Upload the file as a blob (`HEAD /api/blobs/sha256:<digest>` first: an existing blob is not sent again; then
`POST /api/blobs/sha256:<digest>`, which Ollama checks against the digest), then `POST /api/create` with the file,
template, stop parameters and system prompt. `OLLAMA_HOST` is read as Ollama's own tools read it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ftstudio.errors import BadInput, Unavailable
from ftstudio.export.modelfile import OllamaChat
from ftstudio.progress import ProgressFn, report

_CHUNK = 8 << 20


def ollama_url(host: str | None = None) -> str:
    """Ollama's base URL from `host` or $OLLAMA_HOST ("host", "host:port", "http://host:port"), default :11434."""
    raw = (host or os.environ.get("OLLAMA_HOST") or "127.0.0.1:11434").strip().rstrip("/")
    scheme, _, rest = raw.rpartition("://")
    scheme = scheme or "http"
    hostport = rest or "127.0.0.1"
    has_port = "]:" in hostport if hostport.startswith("[") else ":" in hostport
    if not has_port:
        hostport += ":443" if scheme == "https" else ":11434"
    if hostport.startswith("0.0.0.0"):
        hostport = "127.0.0.1" + hostport[len("0.0.0.0") :]
    return f"{scheme}://{hostport}"


def file_digest(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            sha.update(chunk)
    return "sha256:" + sha.hexdigest()


def create_command(model: str, modelfile: Path) -> str:
    return f"ollama create {shlex.quote(model)} -f {shlex.quote(str(modelfile))}"


def install(
    gguf_path: Path,
    model: str,
    chat: OllamaChat,
    system: str | None,
    modelfile: Path,
    *,
    host: str | None = None,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Upload `gguf_path` and create Ollama model `model`; Unavailable with the `ollama create` command otherwise."""
    base = ollama_url(host)
    digest = file_digest(gguf_path)
    try:
        exists = _request("HEAD", f"{base}/api/blobs/{digest}")[0] == 200
        if not exists:
            size = gguf_path.stat().st_size
            with open(gguf_path, "rb") as f:
                status, body = _request("POST", f"{base}/api/blobs/{digest}", data=f, length=size)
            if status not in (200, 201):
                raise BadInput(f"Ollama at {base} refused the upload of {gguf_path.name}: {status} {body}")
            report(progress, "ollama", size, size, "uploaded")
        payload = {
            "model": model,
            "files": {gguf_path.name: digest},
            "template": chat.template,
            "parameters": {"stop": list(chat.stop)},
            "stream": False,
        }
        if system:
            payload["system"] = system
        status, body = _request("POST", f"{base}/api/create", data=json.dumps(payload).encode())
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
        raise Unavailable(
            f"no Ollama answering at {base} ({getattr(exc, 'reason', exc)})",
            hint=f"start Ollama (or set OLLAMA_HOST) and run again, or install by hand: "
            f"{create_command(model, modelfile)}",
        ) from exc
    if status != 200:
        raise BadInput(f"Ollama at {base} could not create {model!r}: {status} {body}", hint="check the model name")
    return {"model": model, "host": base, "digest": digest, "uploaded": not exists}


def _request(method: str, url: str, *, data: Any = None, length: int | None = None) -> tuple[int, str]:
    headers = {"Content-Type": "application/octet-stream" if length is not None else "application/json"}
    if length is not None:
        headers["Content-Length"] = str(length)
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=600) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        body = exc.read().decode("utf-8", "replace")
        with contextlib.suppress(ValueError, AttributeError):
            body = json.loads(body).get("error", body)
        return exc.code, body
