"""Fixtures for the studio's tests: `ftstudio ui` running as a real subprocess on 127.0.0.1, and a client for it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from ftstudio.jobs import JobRegistry


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Studio:
    url: str
    root: Path
    proc: subprocess.Popen

    @property
    def jobs(self) -> JobRegistry:
        return JobRegistry(self.root)

    def wait_job(self, project: str, command: str, timeout: float = 300):
        """Wait for the newest job of `command` to end and return its state."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.jobs.latest(project, command)
            if state is not None and not state.running:
                return state
            time.sleep(0.2)
        raise AssertionError(f"{command} job did not end in {timeout} s: {self.jobs.latest(project, command)}")


def launch_studio(root: Path, *extra: str, env: dict[str, str] | None = None) -> Studio:
    port = free_port()
    env = {**os.environ, "NO_COLOR": "1", "GRADIO_ANALYTICS_ENABLED": "False", **(env or {})}
    log = (root / "ui.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ftstudio", "ui", "--root", str(root), "--port", str(port), *extra],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"ftstudio ui exited: {(root / 'ui.log').read_text()}")
        try:
            with urllib.request.urlopen(url + "/config", timeout=2) as resp:
                if resp.status == 200:
                    return Studio(url, root, proc)
        except OSError:
            time.sleep(0.3)
    proc.terminate()
    raise AssertionError(f"ftstudio ui did not start: {(root / 'ui.log').read_text()}")


def stop_studio(studio: Studio) -> None:
    studio.proc.terminate()
    try:
        studio.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        studio.proc.kill()


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    """The studio on a fresh workspace, shared by one test module."""
    root = tmp_path_factory.mktemp("studio")
    running = launch_studio(root)
    yield running
    stop_studio(running)


@pytest.fixture(scope="module")
def client(studio):
    from gradio_client import Client

    return Client(studio.url, verbose=False)


@pytest.fixture(scope="module")
def helper():
    """The test's Ollama protocol server, listing one helper model."""
    from protocol_servers import OllamaServer

    with OllamaServer(models=["llama3:8b"]) as server:
        yield server


@pytest.fixture(scope="module")
def example_studio(tmp_path_factory, helper):
    """`ftstudio ui --example` on a fresh workspace, its Ollama at the helper server (through OLLAMA_HOST)."""
    root = tmp_path_factory.mktemp("example-studio")
    running = launch_studio(root, "--example", env={"OLLAMA_HOST": helper.url})
    yield running
    stop_studio(running)
