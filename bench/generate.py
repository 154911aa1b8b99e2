"""Generation throughput against a server that answers every request after a fixed 50 ms, with no parallel limit.

Run from the repository root:

    PYTHONPATH=src python bench/generate.py            # c=64 with 2,000 requests, c=8 with 400, c=1 with 100
    PYTHONPATH=src python bench/generate.py --quick    # fewer requests
    PYTHONPATH=src python bench/generate.py --quick --profile   # cProfile of the client side of generate, c=64
    PYTHONPATH=src python bench/generate.py --parts    # only the CPU per request of each part, c=64

Three clients hit the same server (a separate process, so its CPU does not count as the client's):
- `ftstudio generate`: the whole path (provider on aiohttp, run state in SQLite, parsing, filters, fsynced JSONL
  appends), topic-only mode, one pair per request;
- `ftstudio provider`: the provider's `chat` alone;
- baseline `openai.AsyncOpenAI` (the official client, httpx inside), `max_retries=0`.
Efficiency = ideal time (requests × 50 ms ÷ concurrency) ÷ measured time; goal ≥ 0.9 at concurrency 64 (issue 16).
Client CPU per request is the process CPU time (all threads) of the client divided by the requests.

After the table, one more `ftstudio generate` run at c=64 is timed part by part: each synchronous part of the path
(prompt building, reply parsing, pair checks, the near-duplicate index, output lines with their fsynced appends, the
run state in SQLite, the run's start and end) is wrapped to add up the CPU time of its own thread; what is left is
the provider, the event loop and generate's loop around them (the provider alone is the row above).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import json
import multiprocessing
import os
import socket
import sys
import tempfile
import threading
import time
from collections import Counter

LATENCY_S = 0.05


def serve(port: int, ready) -> None:
    from aiohttp import web

    counter = 0

    async def models(request):
        return web.json_response({"object": "list", "data": [{"id": "bench", "object": "model", "owned_by": "x"}]})

    async def chat(request):
        nonlocal counter
        await request.read()
        counter += 1
        n = counter
        await asyncio.sleep(LATENCY_S)
        content = json.dumps(
            {
                "pairs": [
                    {
                        "question": f"Shop {n} sold {n * 7 % 1000} apples on day {n % 365}; how many in week {n}?",
                        "answer": f"Shop {n} sold {n * 7 % 1000} apples on that day, so week {n} adds them up.",
                    }
                ]
            }
        )
        return web.json_response(
            {
                "id": f"c{n}",
                "object": "chat.completion",
                "created": 0,
                "model": "bench",
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 100, "completion_tokens": 40, "total_tokens": 140},
            }
        )

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat)
    ready.set()
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, backlog=4096)


def measure(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def ftstudio_generate(base: str, requests: int, concurrency: int, clock: dict | None = None) -> None:
    """A fresh project, `generate` of `requests` pairs, the project deleted; `clock` gets generate's own times."""
    from ftstudio.project import Project
    from ftstudio.synth.generate import generate
    from ftstudio.synth.settings import SynthSettings

    with tempfile.TemporaryDirectory() as root:
        project = Project.create("bench", root)
        settings = SynthSettings(
            provider="openai", base_url=base, model="bench", pairs_per_chunk=1, concurrency=concurrency
        )
        wall, cpu = time.perf_counter(), time.process_time()
        summary = generate(project, settings, requests, topic="apples")
        if clock is not None:
            clock["wall"], clock["cpu"] = time.perf_counter() - wall, time.process_time() - cpu
        assert summary["written"] == requests and summary["requests"] == requests, summary


def ftstudio_provider(base: str, requests: int, concurrency: int) -> None:
    from ftstudio.synth.parsing import PAIRS_SCHEMA
    from ftstudio.synth.providers import create

    async def main() -> None:
        async with create("openai", base_url=base, concurrency=concurrency) as provider:
            sem = asyncio.Semaphore(concurrency)

            async def one() -> None:
                async with sem:
                    await provider.chat("bench", [{"role": "user", "content": "Write 1 pair."}], schema=PAIRS_SCHEMA)

            await asyncio.gather(*(one() for _ in range(requests)))

    asyncio.run(main())


def openai_client(base: str, requests: int, concurrency: int) -> None:
    import openai

    async def main() -> None:
        client = openai.AsyncOpenAI(base_url=base, api_key="none", max_retries=0)
        sem = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with sem:
                await client.chat.completions.create(
                    model="bench", messages=[{"role": "user", "content": "Write 1 pair."}]
                )

        await asyncio.gather(*(one() for _ in range(requests)))
        await client.close()

    asyncio.run(main())


def parts(base: str, requests: int, concurrency: int, provider_cpu: float | None) -> None:
    """One generate run with each synchronous part wrapped: the CPU per request of each part, and what is left."""
    from ftstudio.synth import generate as gen
    from ftstudio.synth.quality import DuplicateIndex
    from ftstudio.synth.state import RunState

    spent: Counter = Counter()
    calls: Counter = Counter()
    inside = threading.local()  # a part called from another part counts once, in the outer one
    loop_clock: dict[str, float] = {}

    def in_loop() -> bool:
        return "cpu0" in loop_clock and "cpu" not in loop_clock

    def timed(name: str, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            if getattr(inside, "part", False) or not in_loop():
                return fn(*args, **kwargs)  # nested, or before/after the loop (counted as start and end)
            inside.part, start, collected = True, time.thread_time(), getattr(inside, "gc", 0.0)
            try:
                return fn(*args, **kwargs)
            finally:
                # A collection that happened to run inside the part is the collector's, not the part's.
                spent[name] += time.thread_time() - start - (getattr(inside, "gc", 0.0) - collected)
                calls[name] += 1
                inside.part = False

        return wrapper

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            inside.gc_start = time.thread_time()
        elif in_loop():
            took = time.thread_time() - inside.gc_start
            inside.gc = getattr(inside, "gc", 0.0) + took
            spent["garbage collector"] += took
            calls["garbage collector"] += 1

    async def run_loop(self) -> None:
        loop_clock["cpu0"], loop_clock["wall0"] = time.process_time(), time.perf_counter()
        try:
            await original_loop(self)
        finally:
            loop_clock["cpu"] = time.process_time() - loop_clock["cpu0"]
            loop_clock["wall"] = time.perf_counter() - loop_clock["wall0"]

    original_loop = gen._Generator.run_loop
    patches = [
        (gen._Generator, "prompt_for", "prompt building"),
        (gen, "parse_pairs", "reply parsing (JSON, repairs)"),
        (gen._Generator, "check", "pair checks (length, grounding)"),
        (DuplicateIndex, "add_if_new", "near-duplicate index"),
        (gen._Generator, "records_for", "output lines (records, JSON, fsynced appends)"),
        (gen, "append_records", "output lines (records, JSON, fsynced appends)"),
        (gen._Generator, "emit", "progress events"),
    ] + [(RunState, m, "run state (SQLite)") for m in ("assign_many", "finish_tasks", "save_run", "pending_tasks")]
    saved = [(owner, attr, getattr(owner, attr)) for owner, attr, _ in patches]
    for owner, attr, name in patches:
        setattr(owner, attr, timed(name, getattr(owner, attr)))
    gen._Generator.run_loop = run_loop
    gc.callbacks.append(on_gc)
    clock: dict[str, float] = {}
    try:
        wall, cpu = measure(lambda: ftstudio_generate(base, requests, concurrency, clock))
    finally:
        gc.callbacks.remove(on_gc)
        for owner, attr, fn in saved:
            setattr(owner, attr, fn)
        gen._Generator.run_loop = original_loop

    def row(name: str, seconds: float, note: str = "") -> None:
        print(f"  {name:48} {seconds / requests * 1000:>7.3f}  {note}")

    print(
        f"CPU per request of each part: ftstudio generate, c={concurrency}, {requests} requests, "
        f"{wall:.2f} s, {requests * LATENCY_S / concurrency / wall:.2f} efficiency (parts wrapped)"
    )
    print(f"  {'part':48} {'ms/req':>7}")
    for name in [*dict.fromkeys(name for _, _, name in patches), "garbage collector"]:
        row(name, spent[name], f"({calls[name]} calls)")
    rest = loop_clock["cpu"] - sum(spent.values())
    note = f"(the provider alone: {provider_cpu * 1000:.3f})" if provider_cpu is not None else ""
    row("provider, event loop and generate's loop (rest)", rest, note)
    fixed = clock["cpu"] - loop_clock["cpu"]
    row(
        "run start and end (state, templates, checks)",
        fixed,
        f"({fixed * 1000:.0f} ms CPU, {(clock['wall'] - loop_clock['wall']) * 1000:.0f} ms wall, once)",
    )
    scaffold = cpu - clock["cpu"]
    row(
        "bench: project created and deleted",
        scaffold,
        f"({scaffold * 1000:.0f} ms CPU, {(wall - clock['wall']) * 1000:.0f} ms wall, once)",
    )
    row("total", cpu)


def profile(base: str, requests: int) -> None:
    """cProfile of the whole generation path at c=64 (after a warm-up run): where the client's CPU goes."""
    import cProfile
    import pstats

    ftstudio_generate(base, 20, 8)
    profiler = cProfile.Profile()
    wall, cpu = measure(lambda: profiler.runcall(ftstudio_generate, base, requests, 64))
    print(
        f"ftstudio generate, c=64, {requests} requests under cProfile: {wall:.2f} s wall, "
        f"{cpu / requests * 1000:.2f} ms CPU per request (profiler overhead included)"
    )
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(30)
    stats.sort_stats("cumulative").print_stats(40)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests (500 at c=64)")
    parser.add_argument("--profile", action="store_true", help="profile `ftstudio generate` at c=64 and stop")
    parser.add_argument("--parts", action="store_true", help="only the CPU per request of each part, at c=64")
    args = parser.parse_args()
    plan = [(64, 500 if args.quick else 2000), (8, 400), (1, 40 if args.quick else 100)]

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ready = multiprocessing.Event()
    server = multiprocessing.Process(target=serve, args=(port, ready), daemon=True)
    server.start()
    ready.wait(10)
    time.sleep(0.5)
    base = f"http://127.0.0.1:{port}/v1"
    clients = [
        ("ftstudio generate", ftstudio_generate),
        ("ftstudio provider", ftstudio_provider),
        ("openai.AsyncOpenAI", openai_client),
    ]
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, server latency {LATENCY_S * 1000:.0f} ms")
    print(f"{'client':20} {'conc':>5} {'requests':>8} {'time s':>8} {'efficiency':>10} {'CPU ms/req':>10}")
    results, cpus = {}, {}
    try:
        if args.profile:
            return profile(base, plan[0][1])
        for _, fn in clients:  # warm-up: imports and first connections are not what is measured
            fn(base, 20, 8)
        if args.parts:
            return parts(base, plan[0][1], plan[0][0], None)
        for concurrency, requests in plan:
            ideal = requests * LATENCY_S / concurrency
            for name, fn in clients:
                wall, cpu = measure(lambda fn=fn, r=requests, c=concurrency: fn(base, r, c))
                results[(name, concurrency)], cpus[(name, concurrency)] = ideal / wall, cpu / requests
                print(
                    f"{name:20} {concurrency:>5} {requests:>8} {wall:>8.2f} {ideal / wall:>10.2f} "
                    f"{cpu / requests * 1000:>10.2f}",
                    flush=True,
                )
        print()
        parts(base, plan[0][1], plan[0][0], cpus[("ftstudio provider", plan[0][0])])
        print()
    finally:
        server.terminate()
    for concurrency, _ in plan:
        ours, theirs = results[("ftstudio generate", concurrency)], results[("openai.AsyncOpenAI", concurrency)]
        print(f"c={concurrency}: ftstudio generate / openai client efficiency ratio = {ours / theirs:.2f}")
    goal = results[("ftstudio generate", 64)]
    print(f"goal (c=64 efficiency >= 0.9): {'met' if goal >= 0.9 else 'NOT met'} ({goal:.2f})")


if __name__ == "__main__":
    main()
