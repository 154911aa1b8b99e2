"""Start-up: `ftstudio --help`, `models`, `search`, `docs` and `projects` as whole processes, against `python -c pass`.

Run from the checkout:

    PYTHONPATH=src .venv/bin/python bench/startup.py              # 15 rounds
    PYTHONPATH=src .venv/bin/python bench/startup.py --rounds 5   # a quick look

It makes a workspace with one project holding one small ingested document, then runs each command as a fresh
process (`python -m ftstudio ...`, output to /dev/null), the interpreter's own floor (`python -c pass`) and the
parser's (a one-command click app), all seven in turn in each round, so a change of the machine's load sways them
alike. One warm-up round comes first and is not counted: it also writes the bytecode caches an installed package
has (PYTHONDONTWRITEBYTECODE is dropped for the children). Printed per command: the median wall and CPU
(user + system, `os.wait4`) seconds over the rounds, the ratio of the median wall time to the floor's, and the goal
(issues 16 and 22): each command under 0.3 s wall.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
GOAL_S = 0.3
DOCUMENT = """# Sourdough

## Starter

Feed the starter with equal weights of flour and water every day; it is ready when it doubles in four hours.

## Baking

Bake the loaf in a covered pot at 250 degrees for twenty minutes, then uncovered until the crust is dark.
"""


# The parser's own floor: a one-command click app.
CLICK_APP = """
import click
@click.command()
@click.argument("name")
@click.option("--json", is_flag=True)
def main(name: str, json: bool) -> None:
    print(name)
main()
"""


def commands(root: Path) -> dict[str, list[str]]:
    py = sys.executable
    return {
        "python -c pass": [py, "-c", "pass"],
        "click app": [py, "-c", CLICK_APP, "x"],
        "ftstudio --help": [py, "-m", "ftstudio", "--help"],
        "ftstudio models": [py, "-m", "ftstudio", "models", "--root", str(root)],
        "ftstudio search": [py, "-m", "ftstudio", "search", "bench", "starter flour", "--root", str(root)],
        "ftstudio docs": [py, "-m", "ftstudio", "docs", "bench", "--root", str(root)],
        "ftstudio projects": [py, "-m", "ftstudio", "projects", "--root", str(root)],
    }


def run_once(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one process (fails loudly on a non-zero exit)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{stderr[-3000:]}")
    return wall, usage.ru_utime + usage.ru_stime


def make_workspace(root: Path) -> None:
    sys.path.insert(0, str(SRC))
    import ftstudio

    project = ftstudio.Project.create("bench", root)
    doc = root / "sourdough.md"
    doc.write_text(DOCUMENT, encoding="utf-8")
    ftstudio.ingest(project, paths=[doc])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="counted rounds (after one warm-up round)")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory(prefix="ftstudio-startup-") as tmp:
        root = Path(tmp)
        make_workspace(root)
        cmds = commands(root)
        walls: dict[str, list[float]] = {name: [] for name in cmds}
        cpus: dict[str, list[float]] = {name: [] for name in cmds}
        for round_ in range(args.rounds + 1):
            for name, cmd in cmds.items():
                wall, cpu = run_once(cmd, env)
                if round_:  # round 0 warms the caches
                    walls[name].append(wall)
                    cpus[name].append(cpu)
    floor = statistics.median(walls["python -c pass"])
    print(f"{args.rounds} rounds (after one warm-up), each running the {len(cmds)} in turn; load average {_load()}")
    print(f"{'command':<18} {'wall s':>7} {'CPU s':>7} {'× floor':>8}  {'max wall':>8}  goal < {GOAL_S} s wall")
    for name in cmds:
        wall = statistics.median(walls[name])
        verdict = "" if not name.startswith("ftstudio") else ("met" if wall < GOAL_S else "NOT met")
        print(
            f"{name:<18} {wall:7.3f} {statistics.median(cpus[name]):7.3f} {wall / floor:8.1f}  "
            f"{max(walls[name]):8.3f}  {verdict}"
        )


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
