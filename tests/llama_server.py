"""llama-cpp-python's own OpenAI-compatible server, started on a GGUF for tests: a real server nobody here wrote.

    with LlamaCppServer(gguf_path, alias="tiny-llama", log=tmp_path / "server.log") as server:
        server.base_url  # http://127.0.0.1:PORT/v1

The server runs as `python -m llama_cpp.server` in a subprocess on a free loopback port. Start-up waits for
`/v1/models` to answer, with a generous deadline (a loaded 2-core machine can take a while to import and load), and
gives up early, quoting the server's log, if the process dies. It is always terminated on exit. Its output goes to
`log`, which tests read too: uvicorn writes one access line per request with its status.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

START_DEADLINE_S = 180.0


def server_missing() -> str | None:
    """Why the server cannot run here (llama-cpp-python or its `server` extra is missing), else None."""
    try:
        import llama_cpp.server.app  # noqa: F401 - imports fastapi, sse_starlette, starlette_context, ...
    except ImportError as exc:
        return f"needs llama-cpp-python[server] ({exc})"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaCppServer:
    def __init__(self, model: Path, *, alias: str, log: Path, n_ctx: int = 2048):
        self.model, self.alias, self.log, self.n_ctx = Path(model), alias, Path(log), n_ctx
        self.port = 0
        self._proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def access_lines(self, path: str = "/v1/chat/completions") -> list[str]:
        """uvicorn's access-log lines for `path`, in order (each ends with the status, e.g. `200 OK`)."""
        return [line for line in self.log.read_text(errors="replace").splitlines() if f'"POST {path} ' in line]

    def _launch(self) -> subprocess.Popen:
        self.port = _free_port()
        command = [
            sys.executable, "-m", "llama_cpp.server", "--model", str(self.model), "--model_alias", self.alias,
            "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(self.n_ctx),
        ]  # fmt: skip
        with open(self.log, "ab") as out:
            return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def _ready(self, proc: subprocess.Popen, deadline: float) -> bool:
        """True once /v1/models answers; False if the process died (e.g. the port was taken meanwhile)."""
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=5) as reply:
                    if reply.status == 200:
                        return True
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.25)
        raise TimeoutError(f"llama_cpp.server did not answer within {START_DEADLINE_S:g} s:\n{self._log_tail()}")

    def _log_tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:]) if self.log.exists() else ""

    def start(self) -> LlamaCppServer:
        deadline = time.monotonic() + START_DEADLINE_S
        for _ in range(3):  # a free port can be taken by someone else before the server binds it
            self._proc = self._launch()
            try:
                if self._ready(self._proc, deadline):
                    return self
            except BaseException:
                self.stop()
                raise
            self.stop()
        raise RuntimeError(f"llama_cpp.server exited before answering:\n{self._log_tail()}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)

    def __enter__(self) -> LlamaCppServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
