"""Background jobs run the real `ftstudio` CLI as subprocesses; their state lives in the project's files."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from ftstudio.errors import BadInput
from ftstudio.fsutil import time_sorted_name
from ftstudio.jobs import JobRegistry, job_argv
from ftstudio.project import Project
from ftstudio.requests import (
    EvalSetRequest,
    EvaluateRequest,
    GenerateRequest,
    IngestRequest,
    SearchRequest,
    TrainRequest,
)

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
    state = jobs.start("demo", IngestRequest(paths=[doc]))
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
    first = jobs.start("demo", IngestRequest(paths=[doc]))
    # The subprocess needs about a second to import; the first job is surely still running.
    with pytest.raises(BadInput, match=f"ingest job {first.id} is still running"):
        jobs.start("demo", IngestRequest(paths=[doc]))
    with pytest.raises(BadInput, match="knowledge"):
        jobs.start("demo", GenerateRequest(overrides={"provider": "ollama", "model": "m"}))
    assert jobs.wait("demo", first.id, timeout=180).status == "done"
    # Once it ended, the same job may start again.
    second = jobs.start("demo", IngestRequest(paths=[doc]))
    assert jobs.wait("demo", second.id, timeout=180).result["documents"][0]["status"] == "unchanged"


def test_training_takes_the_machine_across_projects(workspace, project):
    Project.create("other", workspace)
    jobs = JobRegistry(workspace)
    # A train job on `demo` that fails fast (no data) still counts as running while its process lives.
    first = jobs.start("demo", TrainRequest(base_model="some/model"))
    with pytest.raises(BadInput, match="one training runs at a time"):
        jobs.start("other", TrainRequest(base_model="some/model"))
    jobs.wait("demo", first.id, timeout=180)


def test_the_newest_job_is_the_one_started_last(workspace, project):
    jobs = JobRegistry(workspace)
    # A job that fails at once and the next one often share a second: the newest must still be the second.
    first = jobs.start("demo", TrainRequest(base_model="some/model"))
    assert jobs.wait("demo", first.id, timeout=180).status == "failed"
    second = jobs.start("demo", TrainRequest(base_model="some/model"))
    assert jobs.latest("demo", "train").id == second.id
    jobs.wait("demo", second.id, timeout=180)
    names = [time_sorted_name("train") for _ in range(500)]  # many to a millisecond
    assert sorted(names) == names and len(set(names)) == 500


def test_a_new_process_reattaches_to_a_job_whose_starter_has_gone(workspace, project, tmp_path):
    doc = _doc(tmp_path / "in")
    starter = (
        "import sys; from ftstudio.jobs import JobRegistry; from ftstudio.requests import IngestRequest; "
        "print(JobRegistry(sys.argv[1]).start('demo', IngestRequest(paths=[sys.argv[2]])).id)"
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
    # A document that takes the job a while (about a second here), stopped once the job has begun reading it.
    sections = (f"## Part {n}\n\n" + " ".join(f"bees{n % 97} keep honey{n % 89} in the hive" for _ in range(120))
                for n in range(2500))  # fmt: skip
    doc = _doc(tmp_path / "in", text="\n\n".join(sections))
    jobs = JobRegistry(workspace)
    state = jobs.start("demo", IngestRequest(paths=[doc]))
    log = jobs.job("demo", state.id).log_path
    deadline = time.monotonic() + 60
    while '"done": 0' not in log.read_text() and jobs.get("demo", state.id).running and time.monotonic() < deadline:
        time.sleep(0.02)
    jobs.stop("demo", state.id)
    final = jobs.wait("demo", state.id, timeout=60)
    assert final.status == "stopped"
    assert final.stop_requested
    assert jobs.stop("demo", state.id).status == "stopped"  # stopping an ended job does nothing


def test_a_failing_command_is_reported_with_its_message(workspace, project, tmp_path):
    jobs = JobRegistry(workspace)
    missing = tmp_path / "no such file.md"
    state = jobs.start("demo", IngestRequest(paths=[missing]))
    final = jobs.wait("demo", state.id, timeout=180)
    assert final.status == "failed" and final.exit_code == 2
    assert "no such file.md" in final.error


def test_secrets_reach_the_job_through_its_environment_only(workspace, project, tmp_path):
    doc = _doc(tmp_path / "in")
    jobs = JobRegistry(workspace)
    state = jobs.start("demo", IngestRequest(paths=[doc]), env={"OPENROUTER_API_KEY": "sk-test-not-stored"})
    jobs.wait("demo", state.id, timeout=180)
    assert state.env_names == ["OPENROUTER_API_KEY"]
    for path in (project.dir / "jobs").iterdir():
        assert "sk-test-not-stored" not in path.read_text(), path


def test_only_job_requests_run_and_are_checked_before_anything_starts(workspace, project):
    jobs = JobRegistry(workspace)
    with pytest.raises(BadInput, match="cannot run as a background job"):
        jobs.start("demo", SearchRequest(query="x"))
    with pytest.raises(BadInput, match="cannot run as a background job"):
        jobs.start("demo", ["ingest", "x"])  # type: ignore[arg-type]
    # Refused in the request's own words, naming the field, before a job file exists.
    with pytest.raises(BadInput, match="model: no helper model chosen"):
        jobs.start("demo", GenerateRequest(pairs=5))
    with pytest.raises(BadInput, match="rank"):
        jobs.start("demo", TrainRequest(base_model="x/y", overrides={"rank": 0}))
    assert not (project.dir / "jobs").exists()


def test_a_job_whose_process_vanished_without_a_result_reads_as_lost(workspace, project, tmp_path):
    doc = _doc(tmp_path / "in")
    jobs = JobRegistry(workspace)
    state = jobs.start("demo", IngestRequest(paths=[doc]))
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
    for hostile in ("--help", "-x.md", "--root"):
        with pytest.raises(BadInput, match="starts with '-'"):
            jobs.start("demo", IngestRequest(paths=[doc, hostile]))
    assert not (project.dir / "jobs").exists()  # refused before anything was written

    # A project made before such names were refused: a clear error saying how to rename it, no job.
    legacy = workspace / "projects" / "--help"
    legacy.mkdir(parents=True)
    (legacy / "project.toml").write_text("")
    with pytest.raises(BadInput, match="starting with '-'") as info:
        jobs.start("--help", IngestRequest(paths=[doc]))
    assert "mv --" in info.value.hint and str(workspace / "projects" / "help") in info.value.hint


def test_options_come_before_a_double_dash_and_positionals_after(workspace, project, tmp_path):
    doc = _doc(tmp_path / "in", name="notes.md")
    jobs = JobRegistry(workspace)
    request = IngestRequest(paths=[doc], overrides={"chunk_tokens": 64, "overlap": 8})
    state = jobs.start("demo", request)
    final = jobs.wait("demo", state.id, timeout=180)
    assert final.status == "done", final.error
    assert final.result["chunk_tokens"] == 64 and final.result["overlap"] == 8
    assert final.args == ["demo", "--chunk-tokens=64", "--overlap=8", str(doc)]
    # Each option is one `--flag=value` word, so a value starting with '-' is never read as an option.
    argv = job_argv("demo", IngestRequest(paths=[doc], overrides={"tokenizer": "-x"}), workspace)
    assert argv[argv.index("--") + 1 :] == ["demo", str(doc)]
    options = argv[argv.index("ingest") + 1 : argv.index("--")]
    assert options == ["--set=tokenizer=-x", "--root", str(workspace), "--json"]
    assert project.settings().knowledge.chunk_tokens == 512  # an override is for this run only


def test_save_stores_the_overrides_after_the_run_checked_them(workspace, project, tmp_path):
    doc = _doc(tmp_path / "in", name="notes.md")
    jobs = JobRegistry(workspace)
    state = jobs.start("demo", IngestRequest(paths=[doc], overrides={"chunk_tokens": 128}, save=True))
    assert jobs.wait("demo", state.id, timeout=180).status == "done"
    assert project.settings().knowledge.chunk_tokens == 128


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (GenerateRequest(pairs=4, overrides={"question_types": ["fact", "numeric"], "followups": True,
                                             "paraphrases": 2, "audience": "-kids"}),
         {"pairs": 4, "question_types": "fact,numeric", "followups": True, "paraphrases": 2, "audience": "-kids"}),
        (TrainRequest(overrides={"only_accepted": False, "dropout": 0.1}, save=True),
         {"only_accepted": False, "set_": ["dropout=0.1"], "save": True}),
        (EvalSetRequest(make_eval=3, fresh=True, overrides={"per_chunk": 3}),
         {"make_eval": 3, "fresh": True, "set_": ["per_chunk=3"]}),
        (EvalSetRequest(make_eval=2, provider="ollama", model="qwen2:7b", base_url="http://127.0.0.1:9", save=True),
         {"make_eval": 2, "provider": "ollama", "model": "qwen2:7b", "base_url": "http://127.0.0.1:9", "save": True}),
        (EvaluateRequest(run="r1", overrides={"judge_model": "judge:1b"}), {"run": "r1", "judge_model": "judge:1b"}),
    ],
)  # fmt: skip
def test_the_cli_reads_each_request_option_as_the_request_meant_it(request_, expected):
    """A job's argv is parsed by the real command: every flag the request writes exists and means the same."""
    import click

    from ftstudio.cli import app

    command = app.get_command(click.Context(app), request_.command)
    ctx = command.make_context(request_.command, [*request_.options(), "--", "demo"])
    # click gives a repeated option's values as a tuple
    assert {k: list(v) if isinstance(v, tuple) else v for k, v in ctx.params.items() if k in expected} == expected
