"""Background jobs run the real `ftstudio` CLI as subprocesses; their state lives in the project's files."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from ftstudio.errors import BadInput
from ftstudio.jobs import JobRegistry, job_argv
from ftstudio.project import Project

DOC = "# Bees\n\nHoney bees live in colonies of many thousands of workers and one queen.\n"


@pytest.fixture
def project(workspace):
    return Project.create("demo", workspace)


def _doc(folder, name="bees notes.md", text=DOC):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def test_ingest_job_runs_the_cli_and_keeps_its_state_in_the_project(workspace, project, tmp_path):
    doc = _doc(tmp_path / "in")
    jobs = JobRegistry(workspace)
    state = jobs.start("demo", "ingest", ["demo", str(doc)])
    assert state.running and state.command == "ingest"
    # The command a user could paste, quoted for the space in the file name.
    assert f"'{doc}'" in state.cli and state.cli.startswith("ftstudio ingest demo ")

    final = jobs.wait("demo", state.id, timeout=180)
    assert final.status == "done", final.error
    assert final.exit_code == 0
    assert [d["status"] for d in final.result["documents"]] == ["added"]
    stored = json.loads((project.dir / "jobs" / f"{state.id}.json").read_text())
    assert stored["status"] == "done" and stored["result"] == final.result
    events = jobs.job("demo", state.id).events()
    assert events and events[-1].stage == "ingest" and events[-1].done == events[-1].total == 1
    assert jobs.latest("demo", "ingest").id == state.id
    assert jobs.active("demo") is None


def test_a_conflicting_job_is_refused_with_the_running_one_named(workspace, project, tmp_path):
    doc = _doc(tmp_path / "in")
    jobs = JobRegistry(workspace)
    first = jobs.start("demo", "ingest", ["demo", str(doc)])
    # The subprocess needs about a second to import; the first job is surely still running.
    with pytest.raises(BadInput, match=f"ingest job {first.id} is still running"):
        jobs.start("demo", "ingest", ["demo", str(doc)])
    with pytest.raises(BadInput, match="knowledge"):
        jobs.start("demo", "generate", ["demo", "--provider", "ollama", "--model", "m"])
    assert jobs.wait("demo", first.id, timeout=180).status == "done"
    # Once it ended, the same job may start again.
    second = jobs.start("demo", "ingest", ["demo", str(doc)])
    assert jobs.wait("demo", second.id, timeout=180).result["documents"][0]["status"] == "unchanged"


def test_training_takes_the_machine_across_projects(workspace, project):
    Project.create("other", workspace)
    jobs = JobRegistry(workspace)
    # A train job on `demo` that fails fast (no data) still counts as running while its process lives.
    first = jobs.start("demo", "train", ["demo"])
    with pytest.raises(BadInput, match="one training runs at a time"):
        jobs.start("other", "train", ["other"])
    jobs.wait("demo", first.id, timeout=180)


def test_a_new_process_reattaches_to_a_job_whose_starter_has_gone(workspace, project, tmp_path):
    doc = _doc(tmp_path / "in")
    starter = (
        "import sys; from ftstudio.jobs import JobRegistry, job_argv; "
        "print(JobRegistry(sys.argv[1]).start('demo', 'ingest', ['demo', sys.argv[2]]).id)"
    )
    # The starting process exits at once, as a UI process would when the user closes it.
    job_id = subprocess.run(
        [sys.executable, "-c", starter, str(workspace), str(doc)], capture_output=True, text=True, check=True
    ).stdout.strip()
    jobs = JobRegistry(workspace)
    final = jobs.wait("demo", job_id, timeout=180)
    assert final.status == "done", final.error
    assert final.result["documents"][0]["path"] == str(doc)


def test_stop_interrupts_the_job_and_it_reads_as_stopped(workspace, project, tmp_path):
    doc = _doc(tmp_path / "in")
    jobs = JobRegistry(workspace)
    state = jobs.start("demo", "ingest", ["demo", str(doc)])
    jobs.stop("demo", state.id)
    final = jobs.wait("demo", state.id, timeout=60)
    assert final.status == "stopped"
    assert final.stop_requested
    assert jobs.stop("demo", state.id).status == "stopped"  # stopping an ended job does nothing


def test_a_failing_command_is_reported_with_its_message(workspace, project, tmp_path):
    jobs = JobRegistry(workspace)
    missing = tmp_path / "no such file.md"
    state = jobs.start("demo", "ingest", ["demo", str(missing)])
    final = jobs.wait("demo", state.id, timeout=180)
    assert final.status == "failed" and final.exit_code == 2
    assert "no such file.md" in final.error


def test_secrets_reach_the_job_through_its_environment_only(workspace, project, tmp_path):
    doc = _doc(tmp_path / "in")
    jobs = JobRegistry(workspace)
    state = jobs.start("demo", "ingest", ["demo", str(doc)], env={"OPENROUTER_API_KEY": "sk-test-not-stored"})
    jobs.wait("demo", state.id, timeout=180)
    assert state.env_names == ["OPENROUTER_API_KEY"]
    for path in (project.dir / "jobs").iterdir():
        assert "sk-test-not-stored" not in path.read_text(), path


def test_only_known_commands_with_list_arguments_run(workspace, project):
    jobs = JobRegistry(workspace)
    with pytest.raises(BadInput, match="cannot run as a background job"):
        jobs.start("demo", "init", ["x"])
    with pytest.raises(BadInput, match="list of str"):
        jobs.start("demo", "ingest", ["demo", 3])  # type: ignore[list-item]


def test_a_job_whose_process_vanished_without_a_result_reads_as_lost(workspace, project, tmp_path):
    doc = _doc(tmp_path / "in")
    jobs = JobRegistry(workspace)
    state = jobs.start("demo", "ingest", ["demo", str(doc)])
    jobs.wait("demo", state.id, timeout=180)
    job = jobs.job("demo", state.id)
    # As a machine restart leaves it: state says running, the process is gone, no output was written.
    job.write(type(state)(**{**json.loads(job.state_path.read_text()), "status": "running", "result": None}))
    job.out_path.write_text("")
    time.sleep(0.1)
    assert JobRegistry(workspace).get("demo", state.id).status == "lost"


def test_names_are_never_options(workspace, project, tmp_path):
    """Issue 12: a project named `--help` made the ingest job run `ftstudio ingest --help` and report done."""
    doc = _doc(tmp_path / "in")
    jobs = JobRegistry(workspace)
    for hostile in (["demo", "--help"], ["demo", "-x.md"], ["demo", str(doc), "--root", "/tmp"]):
        with pytest.raises(BadInput, match="starts with '-'|sets --root"):
            jobs.start("demo", "ingest", hostile)
    assert not (project.dir / "jobs").exists()  # refused before anything was written

    # A project made before such names were refused: a clear error saying how to rename it, no job.
    legacy = workspace / "projects" / "--help"
    legacy.mkdir(parents=True)
    (legacy / "project.toml").write_text("")
    with pytest.raises(BadInput, match="starting with '-'") as info:
        jobs.start("--help", "ingest", ["--help", str(doc)])
    assert "mv --" in info.value.hint and str(workspace / "projects" / "help") in info.value.hint


def test_options_come_before_a_double_dash_and_positionals_after(workspace, project, tmp_path):
    doc = _doc(tmp_path / "in", name="notes.md")
    jobs = JobRegistry(workspace)
    # Arguments in the order a user types them; option values may themselves start with '-'.
    state = jobs.start("demo", "ingest", ["demo", "--chunk-tokens", "64", str(doc), "--overlap=8"])
    final = jobs.wait("demo", state.id, timeout=180)
    assert final.status == "done", final.error
    assert final.result["chunk_tokens"] == 64 and final.result["overlap"] == 8
    assert final.args == ["demo", "--chunk-tokens", "64", str(doc), "--overlap=8"]
    argv = job_argv("ingest", ["demo", "--overlap", "-1", str(doc)], workspace)
    assert argv[argv.index("--") + 1 :] == ["demo", str(doc)]
    assert argv[argv.index("ingest") + 1 : argv.index("--")] == ["--overlap", "-1", "--root", str(workspace), "--json"]
