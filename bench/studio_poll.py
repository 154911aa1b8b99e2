"""What an open studio page costs a training run on this machine: steps' speed and the page's CPU, old and new.

Run (the example's workspace is set up first; a baseline checkout's `src` to compare with; a few minutes a round):
    git worktree add /tmp/base <commit> && PYTHONPATH=src python bench/studio_poll.py --baseline /tmp/base/src

Sides, interleaved each round (the machine's load drifts): `closed` (the studio serves, no page is open),
`baseline` and `current` (the studio from that source, its page open in headless Chromium on the Train tab). Each
side starts the same training job on the example's SmolLM2-135M (`--steps` optimizer steps, no answers compared)
through the workspace's job registry, which the page polls as it would one started by its button. Printed per side:
the median training tokens/s of the steps after the first (from the run's metrics.jsonl), the job's wall time, and
the CPU seconds the studio server and the browser used while the job ran; then each page's speed as a ratio of
`closed`, and current against baseline.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree_cpu(proc: psutil.Process) -> float:
    """User + system CPU seconds of a process and its living children."""
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def start_studio(root: Path, src: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(src), "GRADIO_ANALYTICS_ENABLED": "False", "NO_COLOR": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "ftstudio", "ui", "--root", str(root), "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/config", timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("the studio did not start")


def train_once(root: Path, steps: int) -> dict:
    from ftstudio.jobs import JobRegistry
    from ftstudio.project import Project
    from ftstudio.requests import TrainRequest
    from ftstudio.train.runs import latest_run

    jobs = JobRegistry(root)
    started = time.monotonic()
    state = jobs.start("example", TrainRequest(overrides={"max_steps": steps, "compare_answers": 0}))
    final = jobs.wait("example", state.id, timeout=3600)
    wall = time.monotonic() - started
    if final.status != "done":
        raise RuntimeError(f"training failed: {final.error}")
    run = latest_run(Project.open("example", root))
    speeds = [m["tokens_per_second"] for m in run.metrics() if "tokens_per_second" in m][1:]
    return {"tok_s": statistics.median(speeds), "wall_s": wall}


def side(root: Path, src: Path | None, steps: int, browser) -> dict:
    studio, url = start_studio(root, src or ROOT / "src")
    page = None
    try:
        if browser is not None:
            page = browser.new_page()
            page.goto(url)
            page.get_by_role("tab", name="4 Train").click()
            page.wait_for_timeout(3000)  # the page settles (first loads) before the clock starts
        studio_ps = psutil.Process(studio.pid)
        browser_ps = psutil.Process(browser_pid(browser)) if browser is not None else None
        before = tree_cpu(studio_ps), tree_cpu(browser_ps) if browser_ps else 0.0
        result = train_once(root, steps)
        result["studio_cpu_s"] = tree_cpu(studio_ps) - before[0]
        result["browser_cpu_s"] = (tree_cpu(browser_ps) - before[1]) if browser_ps else 0.0
        return result
    finally:
        if page is not None:
            page.close()
        studio.terminate()
        studio.wait(30)


def browser_pid(browser) -> int:
    """The Chromium process Playwright started (the child of its driver named like the executable)."""
    me = psutil.Process()
    for p in me.children(recursive=True):
        try:
            if "chrom" in p.name() and "--type=" not in " ".join(p.cmdline()):
                return p.pid
        except psutil.Error:
            continue
    raise RuntimeError("no Chromium process found")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, required=True, help="The `src` folder of the code to compare with.")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from ftstudio.example import ensure_example

    root = Path(tempfile.mkdtemp(prefix="studio-poll-"))
    ensure_example(root)
    results: dict[str, list[dict]] = {"closed": [], "baseline": [], "current": []}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium") or None, args=["--no-sandbox"])
        for r in range(args.rounds):
            for name in results:
                src = args.baseline if name == "baseline" else None
                got = side(root, src, args.steps, browser if name != "closed" else None)
                results[name].append(got)
                print(f"round {r + 1} {name:8s} {got['tok_s']:6.1f} tok/s  wall {got['wall_s']:6.1f} s  "
                      f"studio {got['studio_cpu_s']:5.1f} s CPU  browser {got['browser_cpu_s']:5.1f} s CPU",
                      flush=True)  # fmt: skip
        browser.close()
    shutil.rmtree(root, ignore_errors=True)

    med = {name: statistics.median(x["tok_s"] for x in rows) for name, rows in results.items()}
    for name in ("baseline", "current"):
        ratio = med[name] / med["closed"]
        print(f"{name}: {med[name]:.1f} tok/s = {ratio:.2f}x of the closed page's {med['closed']:.1f}")
    print(f"current / baseline: {med['current'] / med['baseline']:.2f}x")


if __name__ == "__main__":
    main()
