"""CPU LoRA training on the real SmolLM2-135M-Instruct: tokens/s, model-FLOPs utilisation, and the probe's forecast.

Run (a folder with the model in Hugging Face form, e.g. the GGUF importer's output; a few minutes a round):
    PYTHONPATH=src python bench/train_real.py --model /tmp/smollm2-hf
    PYTHONPATH=src python bench/train_real.py --model /tmp/smollm2-hf --examples 48 --rounds 3

Each side is `ftstudio.train.runner.train()` as a user runs it (packed rows of 512, LoRA r16/a32 on every linear
projection, the probe on), in its own subprocess, for `fp32` and for `precision=bf16` (CPU autocast). Rounds
interleave the sides (the machine is shared and its load drifts). The parent measures the matmul peak in the same
run (torch matmuls of the model's own shapes, 512 rows, fp32 and bf16, all threads; the best shape is the peak) and
prints, per side: real tokens/s over the training loop, model FLOP/s, its share of the peak of its dtype (MFU), and
the probe's predicted loop time and peak memory against the measured ones.

Model FLOPs per example of s tokens: 4·N·s + 6·L·A·s², where N is the weights of every matrix product (the
projections and the tied output head; a frozen base needs no weight gradient, so backward costs one forward, not
two) and L·A the layers times the attention width (QKᵀ and AV causal, forward once and backward twice). The LoRA
products (under 1 % of N at rank 16) are left out, so the figure slightly undercounts.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

SEED, PACK, BATCH = 0, 512, 4
_VOCABULARY = (
    "the model learns answers from examples of questions fractions energy cells light water sugar oxygen moon "
    "stories force mass ball table list heading teacher capital france paris loss step rate"
)
WORDS = _VOCABULARY.split()


def setup(workdir: Path, model: str, n: int) -> None:
    import shutil

    from ftstudio.project import Project

    shutil.rmtree(workdir / "ws", ignore_errors=True)
    project = Project.create("bench", workdir / "ws")
    project.update_settings("base_model", model=model)
    rng = random.Random(SEED)
    rows = []
    for _ in range(n):
        q = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 24))).capitalize() + "?"
        a = " ".join(rng.choice(WORDS) for _ in range(int(rng.triangular(8, 230, 40)))).capitalize() + "."
        rows.append(json.dumps({"instruction": q, "output": a}) + "\n")
    project.sft_data.write_text("".join(rows))


def run_side(workdir: Path, precision: str) -> dict:
    from ftstudio.project import Project
    from ftstudio.train.probe import peak_rss_mb
    from ftstudio.train.runner import train
    from ftstudio.train.settings import TrainSettings

    project = Project.open("bench", workdir / "ws")
    settings = TrainSettings(
        epochs=1, batch_size=BATCH, pack_length=PACK, eval_fraction=0, compare_answers=0, probe_steps=1,
        save_every=10_000, log_every=1, precision=precision, seed=SEED,
    )  # fmt: skip
    marks: dict[str, float] = {}

    def progress(event) -> None:
        marks.setdefault(event.stage, time.perf_counter())
        marks["last_" + event.stage] = time.perf_counter()

    t0 = time.perf_counter()
    result = train(project, settings, progress=progress)
    return {
        "loop_s": marks["last_train"] - marks["start"], "total_s": time.perf_counter() - t0,
        "tokens": sum(_lengths(project)), "flops": model_flops(project), "steps": result.steps,
        "probe_s": result.probe["predicted_total_s"], "probe_mb": result.probe["peak_memory_mb"],
        "peak_mb": peak_rss_mb(), "final_loss": result.final_train_loss,
    }  # fmt: skip


def _lengths(project) -> list[int]:
    from transformers import AutoTokenizer

    from ftstudio.dataset import read_dataset
    from ftstudio.train.formatting import Formatter

    fmt = Formatter.create(AutoTokenizer.from_pretrained(project.settings().base_model.model))
    return [len(fmt.encode(e)) for e in read_dataset(project.sft_data).examples]


def model_flops(project) -> float:
    from transformers import AutoConfig

    c = AutoConfig.from_pretrained(project.settings().base_model.model)
    head = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    attn = c.num_attention_heads * head
    kv = c.num_key_value_heads * head
    per_layer = c.hidden_size * (attn + 2 * kv) + attn * c.hidden_size + 3 * c.hidden_size * c.intermediate_size
    n = c.num_hidden_layers * per_layer + c.hidden_size * c.vocab_size
    return sum(4 * n * s + 6 * c.num_hidden_layers * attn * s * s for s in _lengths(project))


def matmul_peak(model: str) -> dict[str, float]:
    """GFLOP/s of the model's own products (512 rows), fp32 and bf16, on all threads: the best shape per dtype."""
    import torch
    from transformers import AutoConfig

    c = AutoConfig.from_pretrained(model)
    h, i, v = c.hidden_size, c.intermediate_size, c.vocab_size
    peak = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        best = 0.0
        for k, n in ((h, h), (h, i), (i, h), (h, v)):
            a, b = torch.randn(PACK, k, dtype=dtype), torch.randn(n, k, dtype=dtype)
            a @ b.T
            reps, t = 3, time.perf_counter()
            for _ in range(reps):
                a @ b.T
            best = max(best, 2 * PACK * k * n * reps / (time.perf_counter() - t) / 1e9)
        peak[name] = best
    return peak


def child(workdir: Path, precision: str) -> None:
    print("RESULT " + json.dumps(run_side(workdir, precision)), flush=True)


def spawn(workdir: Path, precision: str) -> dict:
    cmd = [sys.executable, __file__, "--child", precision, "--workdir", str(workdir)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1][:200]}
    return json.loads(line[7:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="the model folder (Hugging Face form); required")
    parser.add_argument("--examples", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/ftstudio-bench-train-real"))
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        return child(args.workdir, args.child)
    if not args.model:
        parser.error("--model FOLDER is required")
    args.workdir.mkdir(parents=True, exist_ok=True)
    setup(args.workdir, str(Path(args.model).resolve()), args.examples)
    import torch

    print(f"{args.examples} examples, batch {BATCH}, rows of {PACK}, {torch.get_num_threads()} threads, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
    results: dict[str, list[dict]] = {"fp32": [], "bf16": []}
    for rnd in range(args.rounds):
        peak = matmul_peak(args.model)
        print(f"\nround {rnd + 1}: matmul peak fp32 {peak['fp32']:.1f} GFLOP/s, bf16 {peak['bf16']:.1f} GFLOP/s, "
              f"load average {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
        print(f"{'side':5s} {'tokens':>6s} {'loop s':>7s} {'tok/s':>6s} {'GFLOP/s':>7s} {'MFU':>5s} "
              f"{'probe s':>7s} {'ratio':>5s} {'RSS MB':>6s} {'probe MB':>8s} {'loss':>6s}")  # fmt: skip
        for side in results:
            r = spawn(args.workdir, side)
            if "error" in r:
                print(f"{side:5s} FAILED: {r['error']}", flush=True)
                continue
            r["tps"], r["gflops"] = r["tokens"] / r["loop_s"], r["flops"] / r["loop_s"] / 1e9
            r["mfu"], r["time_ratio"] = r["gflops"] / peak[side], r["probe_s"] / r["loop_s"]
            results[side].append(r)
            print(f"{side:5s} {r['tokens']:>6d} {r['loop_s']:>7.1f} {r['tps']:>6.1f} {r['gflops']:>7.1f} "
                  f"{r['mfu']:>5.2f} {r['probe_s']:>7.1f} {r['time_ratio']:>5.2f} {r['peak_mb']:>6.0f} "
                  f"{r['probe_mb']:>8.0f} {r['final_loss']:>6.3f}", flush=True)  # fmt: skip
    paired = [b["tps"] / a["tps"] for a, b in zip(results["fp32"], results["bf16"], strict=False)]
    if paired:
        print(f"\nbf16 / fp32 tokens/s: {statistics.median(paired):.2f}x "
              f"(rounds: {', '.join(f'{x:.2f}' for x in paired)})")  # fmt: skip
    for side, rs in results.items():
        if rs:
            t = statistics.median(r["time_ratio"] for r in rs)
            m = statistics.median(r["probe_mb"] / r["peak_mb"] for r in rs)
            print(f"{side}: probe time / measured loop {t:.2f}, probe memory / measured peak {m:.2f} "
                  f"(goal within 25 %: {'met' if abs(t - 1) <= 0.25 and abs(m - 1) <= 0.25 else 'NOT met'})")


if __name__ == "__main__":
    main()
