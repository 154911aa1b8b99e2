"""Fixtures for the studio's tests: `ftstudio ui` running as a real subprocess on 127.0.0.1, a client for it, a
Chromium for the browser tests, and the projects the tests work in.

No test reads what another left: each works in a project of its own, made in the state it starts from (empty, with
the example guide ingested, or a copy of one trained run), so any test passes alone (`-k NAME`) and in any order
(`FTSTUDIO_TEST_SHUFFLE`, tests/conftest.py). What is slow to make is made once per session and copied: the tiny
model (tests/conftest.py), the trained project (`trained_template`), a started studio (`studio`, one for the session,
serving every test's project side by side).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from projects import add_guide, add_pairs, make_eval_set

from ftstudio.jobs import JobRegistry
from ftstudio.project import Project


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


@pytest.fixture(scope="session")
def studio(tmp_path_factory):
    """The studio on a workspace of its own, shared by the session: every test works in a project of its own."""
    root = tmp_path_factory.mktemp("studio")
    running = launch_studio(root)
    yield running
    stop_studio(running)


@pytest.fixture(scope="session")
def client(studio):
    """A gradio_client on the studio. One page session: a project a test creates through it is one it may pick."""
    from gradio_client import Client

    return Client(studio.url, verbose=False)


@pytest.fixture(scope="session")
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


# -- projects ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def trained_template(tmp_path_factory, tiny_model) -> Project:
    """A project trained once per session, for the tests of what comes after training (report card, export, chat):
    the example's guide ingested and its pairs, the tiny Llama as base model (set here, whatever the example uses),
    one completed 2-step run, then an eval set of 3 questions whose helper is gone. Copy it; never change it."""
    pytest.importorskip("ftstudio.train.runner")
    import ftstudio

    project = Project.create("trained", tmp_path_factory.mktemp("trained"))
    add_guide(project)
    add_pairs(project)
    project.update_settings("base_model", model=str(tiny_model("llama")))
    project.update_settings("eval", max_new_tokens=8, passages=2)  # short answers keep the card quick
    # No probe and no comparison: nothing after training reads them, and they cost more than the two steps.
    run = ftstudio.train(project, max_steps=2, probe_steps=0, compare_answers=0, max_new_tokens=8)
    assert run.status == "completed", run
    make_eval_set(project, 3)  # after training, so the run made no card of its own
    return project


# -- the browser ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, started once per module (see chromium.py); each test opens its own page on it."""
    from chromium import chromium

    with chromium() as started:
        yield started


@contextmanager
def opened(browser, url: str, project: str | None = None) -> Iterator:
    """A fresh page (its own browser storage, so no remembered project) on `url`, with `project` picked."""
    from chromium import new_page
    from playwright.sync_api import expect

    with new_page(browser, url) as page:
        if project is not None:
            box = page.get_by_role("combobox", name="Project")
            box.click()
            page.get_by_role("option", name=project, exact=True).click()
            expect(box).to_have_value(project)
        yield page
