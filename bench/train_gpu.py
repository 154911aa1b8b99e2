"""GPU training: Unsloth against transformers + PEFT, LoRA and QLoRA, with the memory probe's prediction checked.

Run on a machine with an NVIDIA GPU (`./install.sh gpu` for Unsloth and bitsandbytes):
    PYTHONPATH=src python bench/train_gpu.py                 # both models, both backends, LoRA and QLoRA
    PYTHONPATH=src python bench/train_gpu.py --models kit    # only the tiny-kit model (about a minute)
Without CUDA it stops at once with exit code 3 and says so.

Models, built from configs with random weights (nothing is downloaded; the kit's Llama-3-style tokenizer and
template on both):
- kit: the largest tiny-kit Llama (hidden 1024, 8 layers, 16 heads / 4 KV heads, MLP 2816, vocabulary 1024);
- 1b: Llama-3.2-1B's published layer shape (hidden 2048, 16 layers, 32 heads / 8 KV heads, MLP 8192) with the
  kit's small vocabulary: the layer stack, where LoRA's time and memory go, is the real one's.
Each (model, backend, method) runs `ftstudio train` in its own subprocess on the same 64 examples of 60-470 tokens
(batch 8, LoRA r 16 on every linear projection, 30 steps, probe 3 steps), and reports real tokens/s over the
training loop, peak GPU memory (`torch.cuda.max_memory_allocated`), the probe's measured peak, and the estimate of
basemodels/memory.py for the same shape, method, batch and sequence length.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from train import make_examples  # noqa: E402  (the CPU benchmark's data, so the two read alike)

MODELS = {
    "kit": {"hidden_size": 1024, "layers": 8, "heads": 16, "kv_heads": 4, "intermediate_size": 2816},
    "1b": {"hidden_size": 2048, "layers": 16, "heads": 32, "kv_heads": 8, "intermediate_size": 8192},
}
BACKENDS, METHODS = ("unsloth", "transformers"), ("lora", "qlora")
EXAMPLES, BATCH, STEPS, SEQ = 64, 8, 30, 512


def require_cuda() -> None:
    import torch

    if not torch.cuda.is_available():
        print("bench/train_gpu.py needs a CUDA GPU and torch sees none (torch.cuda.is_available() is False); "
              "run it on a machine with an NVIDIA GPU and a CUDA build of torch", file=sys.stderr)  # fmt: skip
        sys.exit(3)


def setup(workdir: Path, name: str) -> Path:
    import shutil

    from ftstudio.basemodels.tiny import build_tiny_model
    from ftstudio.project import Project

    model = workdir / f"model-{name}"
    if not (model / "config.json").is_file():
        build_tiny_model(model, "llama", **MODELS[name], dtype="bfloat16")
    ws = workdir / f"ws-{name}"
    shutil.rmtree(ws, ignore_errors=True)
    project = Project.create("bench", ws)
    project.update_settings("base_model", model=str(model))
    records = make_examples(EXAMPLES, random.Random(0))
    project.sft_data.write_text("".join(json.dumps(r) + "\n" for r in records))
    return ws


def child(ws: Path, backend: str, method: str) -> None:
    import torch

    from ftstudio.project import Project
    from ftstudio.train.runner import train
    from ftstudio.train.settings import TrainSettings

    project = Project.open("bench", ws)
    settings = TrainSettings(
        method=method, backend=backend, batch_size=BATCH, max_steps=STEPS, max_seq_length=SEQ, probe_steps=3,
        eval_fraction=0, compare_answers=0, save_every=10_000, log_every=5, warmup_ratio=0,
    )  # fmt: skip
    marks: dict[str, float] = {}

    def progress(event) -> None:
        marks.setdefault(event.stage, time.perf_counter())
        marks["last_" + event.stage] = time.perf_counter()

    torch.cuda.reset_peak_memory_stats()
    result = train(project, settings, progress=progress)
    metrics = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    tps = [m["tokens_per_second"] for m in metrics if m.get("tokens_per_second")][1:]  # the first window warms up
    print("RESULT " + json.dumps({
        "tokens_per_s": sum(tps) / len(tps) if tps else 0.0,
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30,
        "probe_peak_gib": result.probe["peak_memory_mb"] / 1024 if result.probe else None,
        "loop_s": marks["last_train"] - marks["start"],
        "final_loss": result.final_train_loss,
    }), flush=True)  # fmt: skip


def estimate_gib(model_dir: Path, method: str) -> float:
    from ftstudio.basemodels.memory import ModelShape, estimate_memory

    shape = ModelShape.from_config(json.loads((model_dir / "config.json").read_text()))
    est = estimate_memory(shape, method=method, device="cuda", seq_len=SEQ, batch=BATCH, lora_rank=16,
                          gradient_checkpointing=False)  # fmt: skip
    return est.training / 2**30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/ftstudio-bench-train-gpu"))
    parser.add_argument("--child", nargs=3, metavar=("WS", "BACKEND", "METHOD"))
    args = parser.parse_args()
    require_cuda()
    if args.child:
        return child(Path(args.child[0]), args.child[1], args.child[2])
    import torch

    print(f"GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}; batch {BATCH}, {STEPS} steps, "
          f"rows of <= {SEQ} tokens, LoRA r16 all linear; peak = torch.cuda.max_memory_allocated")  # fmt: skip
    print(f"{'model':6s} {'backend':13s} {'method':6s} {'tok/s':>9s} {'peak GiB':>9s} {'probe GiB':>9s} "
          f"{'estimate GiB':>12s} {'est/peak':>8s}")  # fmt: skip
    rows = {}
    for name in args.models:
        ws = setup(args.workdir, name)
        for method in METHODS:
            for backend in BACKENDS:
                cmd = [sys.executable, __file__, "--child", str(ws), backend, method]
                proc = subprocess.run(cmd, capture_output=True, text=True)
                line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
                if line is None:
                    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1][:150]
                    print(f"{name:6s} {backend:13s} {method:6s} FAILED: {tail}", flush=True)
                    continue
                r = rows[(name, backend, method)] = json.loads(line[7:])
                est = estimate_gib(args.workdir / f"model-{name}", method)
                probe = f"{r['probe_peak_gib']:.2f}" if r["probe_peak_gib"] is not None else "-"
                print(f"{name:6s} {backend:13s} {method:6s} {r['tokens_per_s']:>9.0f} {r['peak_gib']:>9.2f} "
                      f"{probe:>9s} {est:>12.2f} {est / r['peak_gib']:>8.2f}", flush=True)  # fmt: skip
    for (name, backend, method), r in rows.items():
        other = rows.get((name, "transformers", method))
        if backend == "unsloth" and other:
            print(f"{name} {method}: Unsloth / transformers+PEFT: {r['tokens_per_s'] / other['tokens_per_s']:.2f}x "
                  f"tokens/s, {r['peak_gib'] / other['peak_gib']:.2f}x peak memory")  # fmt: skip


if __name__ == "__main__":
    main()
