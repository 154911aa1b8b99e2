"""CPU training throughput: ftstudio's trainer against TRL's SFTTrainer at its best settings, and against the floor.

Run (full, on a quiet machine; about 35-45 minutes on 2 cores, see docs/benchmarks.md):
    PYTHONPATH=src python bench/train.py
Sanity run (smaller model, 24 examples, a reduced sweep, one round; a few minutes):
    PYTHONPATH=src python bench/train.py --quick
Where ftstudio's time goes (cProfile of one ftstudio run, top functions by own time, plus torch's operator table):
    PYTHONPATH=src python bench/train.py --quick --profile

Every side trains the same Llama-architecture model (20.8 M parameters, built from a config with the tiny-model
kit) for one epoch on the same examples (about 60-470 tokens each), fp32, learning rate 2e-4, LoRA r 16 / alpha 32
/ dropout 0.05 on every linear projection, loss on the answers only:
- ftstudio: `train()` as a user runs it (packed rows of 512, 8 examples per optimizer step);
- floor: a bare PyTorch loop over the same packed rows with the same LoRA: forward, backward, `optimizer.step()`,
  nothing else (no clipping, scheduler, logging or checkpoints);
- TRL 1.16 `SFTTrainer`, swept over the settings its documentation offers for throughput (packing with the
  'bfd' and 'wrapped' strategies, padding-free batches, gradient checkpointing off, per-device batch size,
  max_length), always with what the CPU needs (use_cpu=True, bf16=False).
Each run is its own subprocess and reports its own peak RSS. Throughput counts real tokens (no padding) over the
training loop. Rounds interleave the sides (the machine's load changes from minute to minute): round 1 runs the
whole TRL sweep, later rounds run ftstudio, the floor and the best TRL setting of round 1; medians are compared.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

BATCH, LR, RANK, ALPHA, DROPOUT, SEED, PACK = 8, 2e-4, 16, 32, 0.05, 0, 512
MODELS = {
    "full": {"hidden_size": 512, "layers": 7, "heads": 8, "kv_heads": 2, "intermediate_size": 1408},
    "quick": {"hidden_size": 256, "layers": 4, "heads": 4, "kv_heads": 2, "intermediate_size": 704},
}
_VOCABULARY = (
    "the model learns answers from examples of questions fractions energy cells light water sugar oxygen "
    "moon stories force mass ball table list heading teacher capital france paris loss step rate"
)
WORDS = _VOCABULARY.split()

# TRL settings swept: name -> SFTConfig overrides. max_length never cuts an example here (the longest is ~470
# tokens), so every setting trains the same tokens. 'bfd' packing turns padding-free on by itself in TRL 1.16;
# padding-free flattens the whole batch into one row, which transformers' sdpa path on the CPU splits with a dense
# block-diagonal mask (quadratic in the flattened row), hence the small batch sizes.
NO_GC = {"gradient_checkpointing": False}
TRL_SWEEP = {
    "defaults (padded, GC on, b8)": {},
    "padded, no GC, b8": NO_GC,
    # TRL refuses padding-free without packing unless max_length is None (it would not truncate): none is needed.
    "padding_free, no GC, b2": {**NO_GC, "padding_free": True, "max_length": None, "per_device_train_batch_size": 2},
    "padding_free, no GC, b8": {**NO_GC, "padding_free": True, "max_length": None},
    "bfd 1024, no GC, b8 (documented)": {**NO_GC, "packing": True},
    "bfd 1024, no GC, b1": {**NO_GC, "packing": True, "per_device_train_batch_size": 1},
    "bfd 512, no GC, b1": {**NO_GC, "packing": True, "max_length": 512, "per_device_train_batch_size": 1},
    "bfd 512, no GC, b2": {**NO_GC, "packing": True, "max_length": 512, "per_device_train_batch_size": 2},
    "bfd 512, no GC, b1, accum 4": {**NO_GC, "packing": True, "max_length": 512, "per_device_train_batch_size": 1,
                                    "gradient_accumulation_steps": 4},  # fmt: skip
    "wrapped 512, no GC, b1": {**NO_GC, "packing": True, "packing_strategy": "wrapped", "max_length": 512,
                               "per_device_train_batch_size": 1},  # fmt: skip
}
# 'wrapped' cuts examples mid-sequence and lets them attend to each other: another task, printed but never "best".
NOT_COMPARABLE = {"wrapped 512, no GC, b1"}
QUICK_SWEEP = ["defaults (padded, GC on, b8)", "padded, no GC, b8", "bfd 512, no GC, b1", "wrapped 512, no GC, b1"]


def make_examples(n: int, rng: random.Random) -> list[dict]:
    """Questions of 4-24 words and answers of 8-230 words: about 60-470 tokens (mean 240) with the kit tokenizer."""
    out = []
    for _ in range(n):
        q = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 24))).capitalize() + "?"
        a = " ".join(rng.choice(WORDS) for _ in range(int(rng.triangular(8, 230, 40)))).capitalize() + "."
        out.append({"instruction": q, "output": a})
    return out


def setup(workdir: Path, n: int, size: str) -> Path:
    import shutil

    from ftstudio.basemodels.tiny import build_tiny_model
    from ftstudio.project import Project

    model = workdir / f"model-{size}"
    if not (model / "config.json").is_file():
        build_tiny_model(model, "llama", **MODELS[size])
    shutil.rmtree(workdir / "ws", ignore_errors=True)
    project = Project.create("bench", workdir / "ws")
    project.update_settings("base_model", model=str(model))
    records = make_examples(n, random.Random(SEED))
    project.sft_data.write_text("".join(json.dumps(r) + "\n" for r in records))
    return model


def _settings():
    from ftstudio.train.settings import TrainSettings

    return TrainSettings(
        epochs=1, batch_size=BATCH, learning_rate=LR, rank=RANK, alpha=ALPHA, dropout=DROPOUT, seed=SEED,
        max_seq_length=1024, pack_length=PACK, eval_fraction=0, probe_steps=0, compare_answers=0,
        scheduler="linear", warmup_ratio=0, save_every=10_000, log_every=10,
    )  # fmt: skip


def _project(workdir: Path):
    from ftstudio.project import Project

    return Project.open("bench", workdir / "ws")


def run_ftstudio(workdir: Path) -> dict:
    from ftstudio.train.runner import train

    project, settings = _project(workdir), _settings()
    marks: dict[str, float] = {}

    def progress(event) -> None:
        marks.setdefault(event.stage, time.perf_counter())
        marks["last_" + event.stage] = time.perf_counter()

    t0 = time.perf_counter()
    result = train(project, settings, progress=progress)
    return {
        "loop_s": marks["last_train"] - marks["start"],
        "total_s": time.perf_counter() - t0,
        "tokens": _our_tokens(project),
        "steps": result.steps,
        "final_loss": result.final_train_loss,
    }


def _our_tokens(project) -> int:
    from transformers import AutoTokenizer

    from ftstudio.dataset import read_dataset
    from ftstudio.train.formatting import Formatter

    fmt = Formatter.create(AutoTokenizer.from_pretrained(project.settings().base_model.model))
    return sum(len(fmt.encode(e)) for e in read_dataset(project.sft_data).examples)


def run_floor(workdir: Path) -> dict:
    """The floor: ftstudio's packed rows and LoRA model, and only forward, backward and the optimizer step."""
    import torch

    from ftstudio.dataset import read_dataset
    from ftstudio.train import backends
    from ftstudio.train.batching import collate, plan_epoch
    from ftstudio.train.formatting import Formatter, prepare

    project, settings = _project(workdir), _settings()
    t0 = time.perf_counter()
    torch.manual_seed(SEED)
    model, tokenizer, device = backends.load(project.settings().base_model.model, settings, "transformers")
    fmt = Formatter.create(tokenizer)
    examples = read_dataset(project.sft_data).examples
    data = prepare(fmt, examples, max_length=1024, too_long="truncate", eval_fraction=0, seed=SEED)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    plan = plan_epoch([len(e) for e in data.train], BATCH, SEED, 0, group_by_length=False)
    batches = [collate([data.train[i] for i in b], pack=True, capacity=PACK, pad_id=pad) for b in plan]
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=LR)
    model.train()
    start = time.perf_counter()
    for b in batches:
        n = torch.tensor(float(b.labels))
        for chunk in b.chunks(1):
            model(**chunk, num_items_in_batch=n, use_cache=False).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    loop = time.perf_counter() - start
    return {"loop_s": loop, "total_s": time.perf_counter() - t0, "tokens": sum(b.tokens for b in batches),
            "steps": len(batches), "final_loss": None}  # fmt: skip


def run_trl(workdir: Path, name: str) -> dict:
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    from ftstudio.dataset import read_dataset

    examples = read_dataset(_project(workdir).sft_data).examples
    rows = [
        {"prompt": [{"role": "user", "content": e.prompt}], "completion": [{"role": "assistant", "content": e.answer}]}
        for e in examples
    ]
    t0 = time.perf_counter()
    options = {"per_device_train_batch_size": BATCH, **TRL_SWEEP[name]}
    config = SFTConfig(
        output_dir=str(workdir / "trl-out"), use_cpu=True, bf16=False, learning_rate=LR, num_train_epochs=1,
        seed=SEED, report_to="none", save_strategy="no", **options,
    )  # fmt: skip
    peft = LoraConfig(
        r=RANK, lora_alpha=ALPHA, lora_dropout=DROPOUT, target_modules="all-linear", task_type="CAUSAL_LM"
    )
    trainer = SFTTrainer(
        model=_project(workdir).settings().base_model.model, args=config, train_dataset=Dataset.from_list(rows),
        peft_config=peft,
    )  # fmt: skip
    tokens = sum(len(x) for x in trainer.train_dataset["input_ids"])
    out = trainer.train()
    return {"loop_s": out.metrics["train_runtime"], "total_s": time.perf_counter() - t0, "tokens": tokens,
            "steps": out.global_step, "final_loss": out.training_loss}  # fmt: skip


def child(side: str, workdir: Path, profile: bool) -> None:
    if profile:
        return profile_ftstudio(workdir)
    if side == "ftstudio":
        result = run_ftstudio(workdir)
    elif side == "floor":
        result = run_floor(workdir)
    else:
        result = run_trl(workdir, side.removeprefix("trl:"))
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["tokens_per_s"] = result["tokens"] / result["loop_s"]
    print("RESULT " + json.dumps(result), flush=True)


def profile_ftstudio(workdir: Path) -> None:
    """One ftstudio run under cProfile (Python side), then torch's operator table for the same run."""
    import cProfile
    import pstats

    import torch.profiler

    profiler = cProfile.Profile()
    profiler.enable()
    run_ftstudio(workdir)
    profiler.disable()
    print("== cProfile, one ftstudio run: top 25 by own time ==")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    print("== cProfile: top 25 by cumulative time ==")
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        run_ftstudio(workdir)
    print("== torch.profiler, one ftstudio run: top 25 operators by own CPU time ==")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))


def run_side(side: str, workdir: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", side, "--workdir", str(workdir)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1][:200]}
    return json.loads(line[7:])


def _row(side: str, r: dict) -> str:
    if "error" in r:
        return f"{side:38s} FAILED: {r['error']}"
    loss = f"{r['final_loss']:.3f}" if r.get("final_loss") is not None else "-"
    return (f"{side:38s} {r['tokens']:>7d} {r['loop_s']:>8.1f} {r['tokens_per_s']:>8.1f} {r['peak_rss_mb']:>8.0f} "
            f"{r['steps']:>6d} {loss:>6s}")  # fmt: skip


HEADER = f"{'side':38s} {'tokens':>7s} {'loop s':>8s} {'tok/s':>8s} {'RSS MB':>8s} {'steps':>6s} {'loss':>6s}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, help="default 120 (--quick: 24)")
    parser.add_argument("--rounds", type=int, help="default 3 (--quick: 1)")
    parser.add_argument("--quick", action="store_true", help="smaller model, 24 examples, 4 TRL settings, 1 round")
    parser.add_argument("--profile", action="store_true", help="print where ftstudio's time goes, then stop")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/ftstudio-bench-train"))
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.workdir, args.profile)
    examples = args.examples or (24 if args.quick else 120)
    rounds = args.rounds or (1 if args.quick else 3)
    size = "quick" if args.quick else "full"
    args.workdir.mkdir(parents=True, exist_ok=True)
    model = setup(args.workdir, examples, size)
    if args.profile:
        sys.exit(subprocess.run([sys.executable, __file__, "--child", "ftstudio", "--profile",
                                 "--workdir", str(args.workdir)]).returncode)  # fmt: skip
    from transformers import AutoConfig, AutoModelForCausalLM

    params = sum(p.numel() for p in AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model)).parameters())
    print(f"model: llama, {params / 1e6:.1f} M parameters; {examples} examples; {BATCH} examples per step "
          f"(ftstudio, floor, TRL unpacked); lr {LR}; LoRA r{RANK}/a{ALPHA}/d{DROPOUT} all linear; fp32; one epoch; "
          f"{rounds} round(s)", flush=True)  # fmt: skip
    sweep = [f"trl:{n}" for n in (QUICK_SWEEP if args.quick else TRL_SWEEP)]
    results: dict[str, list[dict]] = {}
    for rnd in range(rounds):
        if rnd == 0:
            sides = ["ftstudio", "floor", *sweep]
        else:
            ok = [s for s in sweep if "error" not in results[s][0] and s[4:] not in NOT_COMPARABLE]
            sides = ["ftstudio", "floor", max(ok, key=lambda s: results[s][0]["tokens_per_s"])]
        print(f"\nround {rnd + 1}\n{HEADER}", flush=True)
        for side in sides:
            r = run_side(side, args.workdir)
            results.setdefault(side, []).append(r)
            print(_row(side, r), flush=True)
    summarise(results)


def summarise(results: dict[str, list[dict]]) -> None:
    def ok(side: str) -> list[dict]:
        return [r for r in results[side] if "error" not in r]

    n = len(results["ftstudio"])
    # Only a setting measured in every round is compared: one round-1 figure against medians would flatter it.
    trl = [s for s in results if s.startswith("trl:") and s[4:] not in NOT_COMPARABLE and len(ok(s)) == n]
    if len(ok("ftstudio")) < n or len(ok("floor")) < n or not trl:
        sys.exit("a side failed: no ratios")
    best = max(trl, key=lambda s: statistics.median(r["tokens_per_s"] for r in ok(s)))
    sides = ("ftstudio", "floor", best)
    tps = {s: [r["tokens_per_s"] for r in ok(s)] for s in sides}
    rss = {s: statistics.median(r["peak_rss_mb"] for r in ok(s)) for s in sides}
    print(f"\nmedians over {n} round(s): ftstudio {statistics.median(tps['ftstudio']):.1f} tok/s "
          f"({rss['ftstudio']:.0f} MB), floor {statistics.median(tps['floor']):.1f} tok/s ({rss['floor']:.0f} MB), "
          f"best TRL setting '{best[4:]}' {statistics.median(tps[best]):.1f} tok/s ({rss[best]:.0f} MB)")  # fmt: skip
    # Ratios pair the sides of the same round (run minutes apart), then take the median: load drifts between rounds.
    speed = [a / b for a, b in zip(tps["ftstudio"], tps[best], strict=True)]
    # The same tokens on both sides: the ratio of throughputs is that of loop times.
    time_ratio = [f / a for a, f in zip(tps["ftstudio"], tps["floor"], strict=True)]
    memory = rss["ftstudio"] / rss[best]
    rounds = ", ".join(f"{x:.2f}" for x in speed)
    print(f"ftstudio / best TRL: throughput {statistics.median(speed):.2f}x (rounds: {rounds}; goal >= 1.2x), "
          f"peak RSS {memory:.2f}x (goal <= 1): "
          f"{'met' if statistics.median(speed) >= 1.2 and memory <= 1 else 'NOT met'}")  # fmt: skip
    rounds = ", ".join(f"{x:.2f}" for x in time_ratio)
    verdict = "met" if statistics.median(time_ratio) <= 1.15 else "NOT met"
    print(f"ftstudio time / floor time: {statistics.median(time_ratio):.2f}x (rounds: {rounds}; goal <= 1.15x): "
          f"{verdict}")

if __name__ == "__main__":
    main()
