"""CPU training throughput: ftstudio's trainer against TRL's SFTTrainer with its defaults.

Run:  PYTHONPATH=src python bench/train.py [--examples 500] [--workdir /tmp/ftstudio-bench-train]

Both sides train the same Llama-architecture model (about 21 M parameters, built from a config with the tiny-model
kit) for one epoch on the same examples (lengths spread about 60-470 tokens), with the same precision (fp32), batch size
(8), learning rate (2e-4) and LoRA settings (r 16, alpha 32, dropout 0.05, every linear projection), loss on the
answers only. TRL keeps its defaults (padded batches, no packing, gradient checkpointing, max_length 1024) apart
from what the CPU needs (use_cpu=True, bf16=False). Each side runs in its own subprocess, which reports its own
peak RSS. Throughput counts real tokens only (padding is not counted): tokens / training-loop seconds.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

BATCH, LR, RANK, ALPHA, DROPOUT, SEED = 8, 2e-4, 16, 32, 0.05, 0
MODEL = {"hidden_size": 512, "layers": 7, "heads": 8, "kv_heads": 2, "intermediate_size": 1408}
_VOCABULARY = (
    "the model learns answers from examples of questions fractions energy cells light water sugar oxygen "
    "moon stories force mass ball table list heading teacher capital france paris loss step rate"
)
WORDS = _VOCABULARY.split()


def make_examples(n: int, rng: random.Random) -> list[dict]:
    """Questions of 4-24 words and answers of 8-230 words: about 60-470 tokens (mean 240) with the kit tokenizer."""
    out = []
    for _ in range(n):
        q = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 24))).capitalize() + "?"
        a = " ".join(rng.choice(WORDS) for _ in range(int(rng.triangular(8, 230, 40)))).capitalize() + "."
        out.append({"instruction": q, "output": a})
    return out


def setup(workdir: Path, n: int) -> tuple[Path, Path]:
    from ftstudio.basemodels.tiny import build_tiny_model
    from ftstudio.project import Project

    model = workdir / "model"
    if not (model / "config.json").is_file():
        build_tiny_model(model, "llama", **MODEL)
    shutil_rm(workdir / "ws")
    project = Project.create("bench", workdir / "ws")
    project.update_settings("base_model", model=str(model))
    records = make_examples(n, random.Random(SEED))
    project.sft_data.write_text("".join(json.dumps(r) + "\n" for r in records))
    return model, project.dir


def shutil_rm(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def run_ftstudio(workdir: Path) -> dict:
    from ftstudio.project import Project
    from ftstudio.train.runner import train
    from ftstudio.train.settings import TrainSettings

    project = Project.open("bench", workdir / "ws")
    settings = TrainSettings(
        epochs=1, batch_size=BATCH, learning_rate=LR, rank=RANK, alpha=ALPHA, dropout=DROPOUT, seed=SEED,
        max_seq_length=1024, eval_fraction=0, probe_steps=0, compare_answers=0, scheduler="linear", warmup_ratio=0,
        save_every=10_000, log_every=10,
    )  # fmt: skip
    marks: dict[str, float] = {}

    def progress(event) -> None:
        marks.setdefault(event.stage, time.perf_counter())
        marks["last_" + event.stage] = time.perf_counter()

    t0 = time.perf_counter()
    result = train(project, settings, progress=progress)
    total = time.perf_counter() - t0
    run = json.loads((result.run_dir / "run.json").read_text())
    return {
        "side": "ftstudio",
        "loop_s": marks["last_train"] - marks["start"],
        "total_s": total,
        "tokens": _our_tokens(project, settings),
        "steps": result.steps,
        "final_loss": result.final_train_loss,
        "examples": run["examples"]["train"],
    }


def _our_tokens(project, settings) -> int:
    from transformers import AutoTokenizer

    from ftstudio.dataset import read_dataset
    from ftstudio.train.formatting import Formatter

    tok = AutoTokenizer.from_pretrained(project.settings().base_model.model)
    fmt = Formatter.create(tok)
    return sum(len(fmt.encode(e)) for e in read_dataset(project.sft_data).examples)


def run_trl(workdir: Path) -> dict:
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    from ftstudio.dataset import read_dataset

    examples = read_dataset(workdir / "ws" / "projects" / "bench" / "data" / "sft_data.jsonl").examples
    rows = [
        {"prompt": [{"role": "user", "content": e.prompt}], "completion": [{"role": "assistant", "content": e.answer}]}
        for e in examples
    ]
    t0 = time.perf_counter()
    config = SFTConfig(
        output_dir=str(workdir / "trl-out"),
        use_cpu=True,  # needed on a CPU
        bf16=False,  # must match: fp32 on both sides
        per_device_train_batch_size=BATCH,
        learning_rate=LR,
        num_train_epochs=1,
        seed=SEED,
        report_to="none",
        save_strategy="no",
    )
    peft = LoraConfig(
        r=RANK, lora_alpha=ALPHA, lora_dropout=DROPOUT, target_modules="all-linear", task_type="CAUSAL_LM"
    )
    trainer = SFTTrainer(
        model=str(workdir / "model"), args=config, train_dataset=Dataset.from_list(rows), peft_config=peft
    )
    tokens = sum(len(x) for x in trainer.train_dataset["input_ids"])
    out = trainer.train()
    return {
        "side": "trl",
        "loop_s": out.metrics["train_runtime"],
        "total_s": time.perf_counter() - t0,
        "tokens": tokens,
        "steps": out.global_step,
        "final_loss": out.training_loss,
        "examples": len(rows),
    }


def child(side: str, workdir: Path) -> None:
    result = run_ftstudio(workdir) if side == "ftstudio" else run_trl(workdir)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["tokens_per_s"] = result["tokens"] / result["loop_s"]
    print("RESULT " + json.dumps(result), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=500)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/ftstudio-bench-train"))
    parser.add_argument("--child", choices=["ftstudio", "trl"])
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.workdir)
    args.workdir.mkdir(parents=True, exist_ok=True)
    model, _ = setup(args.workdir, args.examples)
    from transformers import AutoConfig, AutoModelForCausalLM

    params = sum(p.numel() for p in AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model)).parameters())
    print(f"model: llama, {params / 1e6:.1f} M parameters; {args.examples} examples; batch {BATCH}; lr {LR}; "
          f"LoRA r{RANK}/a{ALPHA}/d{DROPOUT} all linear; fp32; one epoch", flush=True)  # fmt: skip
    results = {}
    for side in ("ftstudio", "trl"):
        proc = subprocess.run([sys.executable, __file__, "--child", side, "--workdir", str(args.workdir)],
                              capture_output=True, text=True)  # fmt: skip
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            sys.exit(f"{side} failed:\n{proc.stderr[-3000:]}")
        results[side] = json.loads(line[7:])
        r = results[side]
        print(f"{side:9s} tokens {r['tokens']:>7d}  loop {r['loop_s']:7.1f} s  total {r['total_s']:7.1f} s  "
              f"{r['tokens_per_s']:7.1f} tok/s  peak RSS {r['peak_rss_mb']:6.0f} MB  steps {r['steps']}  "
              f"final loss {r['final_loss']:.3f}", flush=True)  # fmt: skip
    ours, base = results["ftstudio"], results["trl"]
    print(f"throughput ratio ftstudio/TRL: {ours['tokens_per_s'] / base['tokens_per_s']:.2f}x (goal >= 2x); "
          f"peak RSS ratio: {ours['peak_rss_mb'] / base['peak_rss_mb']:.2f} (goal <= 1)")  # fmt: skip


if __name__ == "__main__":
    main()
