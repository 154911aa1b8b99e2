"""Background jobs: long work (ingest, generate, train, export) run as a subprocess of our own CLI.

A job runs `python -m ftstudio COMMAND OPTIONS... --root ROOT --json -- POSITIONALS...` (after `--` nothing is read
as an option: a project or file name can never inject one) with its stdout and stderr going straight to files
in the project, `projects/<name>/jobs/<id>.out` (the final JSON document) and `<id>.log` (progress: one
event line per event, see ftstudio.progress, mixed with any other log lines). Its state,
`<id>.json`, says what runs, the equivalent CLI command, the process id and, once it ended, how.

Because everything lives in files and the subprocess does not depend on the process that started it, a page
reload, or a new UI process, re-attaches to a running job: `JobRegistry.get` reads the state, checks that the
process (same pid and start time) still lives, and once it has ended reads its result.

Conflicts: each command declares what it reads and writes in the project; a job is refused (BadInput, naming the
running job) when it would write what a running job reads or writes, or read what a running job writes. Training
also takes the whole machine, so only one training runs per workspace.

Stop sends SIGINT (the CLI's Ctrl-C path: the stage saves what it finished), then SIGTERM and SIGKILL after grace
periods. Secrets reach the job only through its environment (`env=`), never its arguments or a file.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import psutil

from ftstudio.errors import BadInput, NotFound, error_message
from ftstudio.fsutil import atomic_write_text, time_sorted_name
from ftstudio.progress import Event, parse_event_line
from ftstudio.project import Project
from ftstudio.requests import Request

Status = Literal["running", "done", "partial", "failed", "stopped", "lost"]


@dataclass(frozen=True)
class Access:
    """What a command reads and writes inside a project ("knowledge", "data", "runs", "exports", "settings")."""

    reads: frozenset[str] = frozenset()
    writes: frozenset[str] = frozenset()
    machine: bool = False  # takes the whole machine: one per workspace


def _access(reads: str = "", writes: str = "", machine: bool = False) -> Access:
    return Access(frozenset(reads.split()), frozenset(writes.split()), machine)


# Commands that may run as jobs (each has its request type in ftstudio.requests) and what each touches.
ACCESS: dict[str, Access] = {
    "ingest": _access(writes="knowledge"),
    "generate": _access(reads="knowledge settings", writes="data"),
    "train": _access(reads="data settings", writes="runs", machine=True),
    "export": _access(reads="runs settings", writes="exports"),
    "data": _access(reads="knowledge settings", writes="data"),  # --make-eval and review write data/
    "eval": _access(reads="data knowledge settings", writes="runs", machine=True),
    "models use": _access(reads="settings", writes="settings"),  # imports a GGUF first: seconds to minutes
}

STOP_GRACE_S = 20.0  # SIGINT → SIGTERM: long enough for a trainer to write its checkpoint
KILL_GRACE_S = 5.0  # SIGTERM → SIGKILL


@dataclass(frozen=True)
class JobState:
    """One job as stored in `jobs/<id>.json`. `result` is the command's JSON document once it ended."""

    id: str
    project: str
    command: str  # the CLI command name, e.g. "train"
    args: list[str]  # its arguments after the command, without --root/--json
    cli: str  # the equivalent command line a user could type (shlex-quoted)
    pid: int
    create_time: float  # the process start time: tells our process from a later one that reused its pid
    started: float
    status: Status = "running"
    ended: float | None = None
    exit_code: int | None = None
    result: Any = None
    error: str | None = None
    stop_requested: bool = False
    env_names: list[str] = field(default_factory=list)  # names only: values (API keys) are never stored

    @property
    def running(self) -> bool:
        return self.status == "running"


def _job_dir(project: Project) -> Path:
    return project.dir / "jobs"


def _slug(command: str) -> str:
    """A command as one word, for ids and element names (`models use` -> `models-use`)."""
    return command.replace(" ", "-")


def _alive(state: JobState) -> bool:
    try:
        proc = psutil.Process(state.pid)
        return abs(proc.create_time() - state.create_time) < 1.0 and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def cli_line(command: str, args: list[str], root: Path) -> str:
    """The command a user would type for this job, quoted so it survives spaces and quotes in paths."""
    return shlex.join(["ftstudio", *command.split(), *args, "--root", str(root)])


def request_line(project: str, request: Request, root: Path) -> str:
    """The command a user would type to run `request` on `project`."""
    return cli_line(request.command, [project, *request.options(), *request.positionals()], root)


def _check_positionals(command: str, positionals: list[str]) -> None:
    """Refuse a name or path starting with '-': after `--` it is safe, but the command line shown to the user
    (without `--`) would read it as an option."""
    for arg in positionals:
        if arg.startswith("-"):
            raise BadInput(
                f"job argument {arg!r} starts with '-', so `ftstudio {command}` would read it as an option",
                hint="names and paths passed to a job may not start with '-': rename it (or pass ./ before a path)",
            )


def job_argv(project: str, request: Request, root: Path) -> list[str]:
    """The process a job runs: `python -m ftstudio COMMAND OPTIONS --root ROOT --json -- PROJECT POSITIONALS`."""
    options, positionals = request.options(), [project, *request.positionals()]
    return [sys.executable, "-m", "ftstudio", *request.command.split(), *options, "--root", str(root), "--json", "--",
            *positionals]  # fmt: skip


class Job:
    """A handle on one job's files. Read-only views; `JobRegistry` changes state."""

    def __init__(self, project: Project, job_id: str):
        self.project = project
        self.id = job_id
        base = _job_dir(project) / job_id
        self.state_path = base.with_suffix(".json")
        self.log_path = base.with_suffix(".log")
        self.out_path = base.with_suffix(".out")

    def state(self) -> JobState:
        try:
            raw = json.loads(self.state_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise NotFound(
                f"no job {self.id!r} in project {self.project.name!r}", hint="list jobs to see ids"
            ) from None
        return JobState(**raw)

    def write(self, state: JobState) -> None:
        atomic_write_text(self.state_path, json.dumps(asdict(state), ensure_ascii=False, default=str))

    def events(self) -> list[Event]:
        """Every progress event the job has reported so far, in order."""
        return [e for e in map(parse_event_line, self._log_lines()) if e is not None]

    def last_event(self) -> Event | None:
        for line in reversed(self._log_lines(tail=65536)):
            if (event := parse_event_line(line)) is not None:
                return event
        return None

    def log_text(self, tail: int = 20000) -> str:
        """The log's human lines (event lines left out), at most the last `tail` characters."""
        lines = [ln for ln in self._log_lines(tail=tail * 4) if parse_event_line(ln) is None]
        return "\n".join(lines)[-tail:]

    def _log_lines(self, tail: int | None = None) -> list[str]:
        try:
            with self.log_path.open("rb") as f:
                if tail is not None:
                    f.seek(0, os.SEEK_END)
                    f.seek(max(0, f.tell() - tail))
                data = f.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return []
        lines = data.splitlines()
        if tail is not None and len(data) >= tail and lines:
            lines = lines[1:]  # the first line may be cut
        return lines

    def read_result(self) -> tuple[Any, str | None]:
        """The command's JSON document and, if it reported a failure, its message (with the hint)."""
        try:
            text = self.out_path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None, None
        if not text:
            return None, None
        try:
            doc = json.loads(text.splitlines()[-1])
        except ValueError:
            return text, None
        return doc, error_message(doc)


class JobRegistry:
    """The one place jobs are started, found, watched and stopped, for every project under a workspace root.

    Several registries (one per UI process, say) can share a root: the state is in the project files. Starting
    is serialised inside one process; across processes, a conflicting start is still caught from the files,
    save for a race of a few milliseconds.
    """

    def __init__(self, root: Path | str):
        self.root = Path(root).resolve()
        self._lock = threading.Lock()
        self._procs: dict[str, subprocess.Popen] = {}

    def _project(self, name: str) -> Project:
        return Project.open(name, self.root)

    # -- reading ------------------------------------------------------------------------------------------------

    def job(self, project: str, job_id: str) -> Job:
        return Job(self._project(project), job_id)

    def get(self, project: str, job_id: str) -> JobState:
        """The job's state, brought up to date: a job whose process has gone is finished from its files."""
        job = self.job(project, job_id)
        state = job.state()
        if state.running and job_id not in self._procs and not _alive(state):
            state = self._finish(job, state, exit_code=None)
        return state

    def _ids(self, project: str) -> list[str]:
        folder = _job_dir(self._project(project))
        return sorted((p.stem for p in folder.glob("*.json")), reverse=True) if folder.is_dir() else []

    def list(self, project: str) -> list[JobState]:
        """The project's jobs, newest first."""
        return [self.get(project, i) for i in self._ids(project)]

    def active(self, project: str, command: str | None = None) -> JobState | None:
        """The newest running job of the project (of that command, if given), or None."""
        for state in self.list(project):
            if state.running and (command is None or state.command == command):
                return state
        return None

    def latest(self, project: str, command: str) -> JobState | None:
        """The newest job of that command, running or not: what a reloaded page shows."""
        # Ids carry the command (`<time>-<command>-<hex>`), so only one state file is read.
        job_id = next((i for i in self._ids(project) if i.rsplit("-", 1)[0].endswith(f"-{_slug(command)}")), None)
        return self.get(project, job_id) if job_id else None

    # -- starting -----------------------------------------------------------------------------------------------

    def conflict(self, project: str, command: str) -> str | None:
        """Why `command` may not start now on `project` (a message naming the job in the way), or None."""
        if command not in ACCESS:
            raise BadInput(f"{command!r} cannot run as a background job", hint=f"use one of: {', '.join(ACCESS)}")
        mine = ACCESS[command]
        names = [project]
        if mine.machine:
            from ftstudio.project import list_projects

            names = list_projects(self.root)
        for name in names:
            for other in self.list(name):
                if not other.running:
                    continue
                theirs = ACCESS.get(other.command, Access())
                if name == project:
                    clash = (mine.writes & (theirs.reads | theirs.writes)) | (mine.reads & theirs.writes)
                    if clash:
                        return (
                            f"{other.command} job {other.id} is still running on project {project!r} and uses its "
                            f"{', '.join(sorted(clash))}; wait for it to finish or stop it first"
                        )
                if mine.machine and theirs.machine:
                    return (
                        f"{other.command} job {other.id} (project {name!r}) is using this machine; one training "
                        "runs at a time: wait for it or stop it first"
                    )
        return None

    def start(self, project: str, request: Request, env: dict[str, str] | None = None) -> JobState:
        """Check `request` against the project (BadInput naming every wrong field, before anything starts), then
        run `ftstudio COMMAND OPTIONS --root ROOT --json -- PROJECT POSITIONALS` in the background; BadInput if it
        conflicts with a running job.

        `env` adds to the subprocess's environment (API keys go here: never in the request). Returns the new state.
        """
        if not isinstance(request, Request) or request.command not in ACCESS:
            raise BadInput(f"{request!r} cannot run as a background job", hint=f"use one of: {', '.join(ACCESS)}")
        command = request.command
        proj = self._project(project)
        request.resolve(proj)
        positionals = [project, *request.positionals()]
        _check_positionals(command, positionals)
        argv = job_argv(project, request, self.root)
        args = [project, *request.options(), *request.positionals()]
        with self._lock:
            reason = self.conflict(project, command)
            if reason:
                raise BadInput(reason, hint="the running job shows in its tab with a Stop button")
            job_id = time_sorted_name(_slug(command))
            job = Job(proj, job_id)
            job.state_path.parent.mkdir(parents=True, exist_ok=True)
            full_env = {**os.environ, **(env or {}), "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"}
            with job.log_path.open("wb") as log, job.out_path.open("wb") as out:
                # A session of its own: a Ctrl-C meant for the UI does not reach the job, and stop() can signal
                # the job's whole process group (data loader workers included).
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=log,
                    env=full_env,
                    cwd=self.root,
                    start_new_session=True,
                )
            try:
                create_time = psutil.Process(proc.pid).create_time()
            except psutil.Error:  # already gone: the waiter below records how it ended
                create_time = 0.0
            state = JobState(
                id=job_id,
                project=project,
                command=command,
                args=list(args),
                cli=cli_line(command, list(args), self.root),
                pid=proc.pid,
                create_time=create_time,
                started=time.time(),
                env_names=sorted(env or {}),
            )
            job.write(state)
            self._procs[job_id] = proc
        threading.Thread(target=self._wait, args=(job, proc), daemon=True, name=f"job-{job_id}").start()
        return state

    def _wait(self, job: Job, proc: subprocess.Popen) -> None:
        code = proc.wait()
        with self._lock:
            self._finish(job, job.state(), exit_code=code)
            self._procs.pop(job.id, None)

    def _finish(self, job: Job, state: JobState, exit_code: int | None) -> JobState:
        result, error = job.read_result()
        if exit_code is None and isinstance(result, dict) and "exit_code" in result:
            exit_code = result["exit_code"]
        if exit_code is None and result is not None and error is None:
            exit_code = 0
        if exit_code == 0:
            status: Status = "done"
        elif exit_code == 1 and result is not None and error is None:
            status = "partial"  # some inputs failed, each named in the result; the rest were kept
        elif state.stop_requested or exit_code in (130, -signal.SIGINT, -signal.SIGTERM, -signal.SIGKILL):
            status = "stopped"
        elif exit_code is None:
            status = "lost"
            error = "the job's process ended without a result (the machine restarted or it was killed)"
        else:
            status = "failed"
        if error is None and status == "failed":
            error = job.log_text(tail=2000) or f"exited with code {exit_code}"
        final = replace(state, status=status, ended=time.time(), exit_code=exit_code, result=result, error=error)
        job.write(final)
        return final

    # -- stopping -----------------------------------------------------------------------------------------------

    def stop(self, project: str, job_id: str, grace: float = STOP_GRACE_S) -> JobState:
        """Ask the job to stop (SIGINT: it saves what it finished); SIGTERM, then SIGKILL, if it lingers.

        Returns at once; the escalation runs in the background. Stopping a finished job does nothing.
        """
        job = self.job(project, job_id)
        with self._lock:  # never overwrite the final state the waiter may be writing
            state = self.get(project, job_id)
            if not state.running:
                return state
            state = replace(state, stop_requested=True)
            job.write(state)
        self._signal(state, signal.SIGINT)

        def escalate() -> None:
            for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, KILL_GRACE_S)):
                deadline = time.monotonic() + wait
                while time.monotonic() < deadline:
                    if not _alive(state):
                        return
                    time.sleep(0.1)
                self._signal(state, sig)

        threading.Thread(target=escalate, daemon=True, name=f"stop-{job_id}").start()
        return state

    @staticmethod
    def _signal(state: JobState, sig: int) -> None:
        if not _alive(state):
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(state.pid, sig)

    def wait(self, project: str, job_id: str, timeout: float | None = None, poll: float = 0.1) -> JobState:
        """Block until the job ends (or `timeout` seconds pass) and return its state."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            state = self.get(project, job_id)
            if not state.running or (deadline is not None and time.monotonic() >= deadline):
                return state
            time.sleep(poll)


_registries: dict[Path, JobRegistry] = {}
_registries_lock = threading.Lock()


def registry(root: Path | str) -> JobRegistry:
    """The process's one registry for a workspace root."""
    key = Path(root).resolve()
    with _registries_lock:
        if key not in _registries:
            _registries[key] = JobRegistry(key)
        return _registries[key]
