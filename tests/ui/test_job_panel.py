"""A job panel's timer tick sends values only when there is something new: the browser redraws nothing otherwise."""

from __future__ import annotations

import gradio as gr

from ftstudio.jobs import JobRegistry
from ftstudio.project import Project
from ftstudio.requests import IngestRequest
from ftstudio.ui.common import JobPanel

NOTHING = [gr.update()] * 4  # status, command line, log, Stop: unchanged


def test_a_tick_sends_values_only_when_the_job_moved_on(workspace, tmp_path):
    Project.create("demo", workspace)
    registry = JobRegistry(workspace)
    with gr.Blocks():
        panel = JobPanel(registry, "ingest")
    finished = []

    def on_finish(project, job_id):
        finished.append(job_id)
        return ["reloaded"]

    first = panel.refresh("demo", None, None, on_finish, 1)
    assert first[0] == "No job yet." and first[6] == gr.update()
    shown = first[5]
    assert panel.refresh("demo", None, shown, on_finish, 1)[:4] == NOTHING

    doc = tmp_path / "bees.md"
    doc.write_text("# Bees\n\nHoney bees live in colonies of many thousands of workers and one queen.\n")
    state = registry.start("demo", IngestRequest(paths=[doc]))
    running = panel.refresh("demo", None, shown, on_finish, 1)
    assert f"job `{state.id}`" in running[0] and running[5] != shown and not finished
    registry.wait("demo", state.id, timeout=180)

    done = panel.refresh("demo", running[4], running[5], on_finish, 1)
    assert "**done**" in done[0] and done[4] == state.id and done[6] == "reloaded" and finished == [state.id]
    again = panel.refresh("demo", done[4], done[5], on_finish, 1)
    assert again[:4] == NOTHING and again[4:6] == done[4:6] and again[6] == gr.update() and finished == [state.id]
    # Another page (or a reload) has shown nothing yet: it gets the whole panel, and the results once.
    fresh = panel.refresh("demo", None, None, on_finish, 1)
    assert "**done**" in fresh[0] and fresh[6] == "reloaded"
