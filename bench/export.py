"""Benchmark: GGUF export by ftstudio against llama.cpp's own `convert_hf_to_gguf.py`, same model, same run.

Run:  PYTHONPATH=src python bench/export.py [--hidden 1024 --layers 12 --intermediate 2816] [--repeat 2]

Builds a Llama-architecture model of about 143 M parameters from a config (the tiny-model kit at bigger sizes, bf16
safetensors), then writes it as GGUF F16 and Q8_0 twice: with ftstudio's exporter and with llama.cpp's converter
from the llama-cpp-python source distribution of the installed version (downloaded with pip and unpacked into a
temporary folder; never committed). Its tokenizer has its own small vocabulary, which the converter cannot recognise
by hash, so the temporary copy is patched to name its pre-tokenizer ("llama-bpe"). Each conversion runs in its own
subprocess; the table shows wall time, peak RSS (from wait4), file size and the ratios ftstudio / llama.cpp, and
checks with gguf.GGUFReader that both files hold identical tensors (names, types, shapes, bytes).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
from importlib.metadata import version
from pathlib import Path

import numpy as np

MERGE_FTSTUDIO = """
import sys
from pathlib import Path
from ftstudio.export.merged import export_merged
export_merged(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
"""
MERGE_PEFT = """
import sys, torch
from peft import PeftModel
from transformers import AutoModelForCausalLM
model = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.bfloat16)
PeftModel.from_pretrained(model, sys.argv[2]).merge_and_unload().save_pretrained(sys.argv[3])
"""
FTSTUDIO = """
import sys
from pathlib import Path
from ftstudio.export.gguf.writer import export_gguf
export_gguf(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], name="bench")
"""


# Linux carries a process's peak RSS across fork and exec, so a child forked from this (large) process would report
# at least our own peak. A small launcher process forks the measured command and reports its wait4() figures.
LAUNCHER = """
import os, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(time.perf_counter() - start, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status))
"""


def measure(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one subprocess."""
    proc = subprocess.run([sys.executable, "-c", LAUNCHER, *cmd], env=env, capture_output=True, text=True)
    wall, rss, code = proc.stdout.split()[-3:]
    if int(code) != 0:
        raise SystemExit(f"{cmd[:3]} failed:\n{proc.stderr[-3000:]}")
    return float(wall), float(rss)


def llama_cpp_converter(work: Path) -> Path:
    """convert_hf_to_gguf.py from the installed llama-cpp-python's sdist, patched to name the pre-tokenizer."""
    wanted = version("llama_cpp_python")
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", f"llama-cpp-python=={wanted}",
         "-d", str(work), "-q"],
        check=True,
    )  # fmt: skip
    sdist = next(work.glob("llama_cpp_python-*.tar.gz"))
    with tarfile.open(sdist) as tar:
        tar.extractall(work, filter="data")
    root = next(work.glob("llama_cpp_python-*/vendor/llama.cpp"))
    base = root / "conversion" / "base.py"
    source = base.read_text()
    marker = "    def get_vocab_base_pre(self, tokenizer) -> str:\n"
    assert marker in source, "converter layout changed: get_vocab_base_pre not found"
    base.write_text(source.replace(marker, marker + '        return "llama-bpe"  # bench: a tiny own vocabulary\n'))
    return root / "convert_hf_to_gguf.py"


def same_tensors(a: Path, b: Path) -> tuple[bool, str]:
    import gguf

    ra, rb = gguf.GGUFReader(a), gguf.GGUFReader(b)
    ta, tb = {t.name: t for t in ra.tensors}, {t.name: t for t in rb.tensors}
    if set(ta) != set(tb):
        return False, f"tensor names differ: {sorted(set(ta) ^ set(tb))[:5]}"
    for name, t in ta.items():
        u = tb[name]
        if t.tensor_type != u.tensor_type or list(t.shape) != list(u.shape):
            return False, f"{name}: {t.tensor_type.name}{list(t.shape)} vs {u.tensor_type.name}{list(u.shape)}"
        if not np.array_equal(np.asarray(t.data).view(np.uint8), np.asarray(u.data).view(np.uint8)):
            return False, f"{name}: data differs"
    return True, f"{len(ta)} tensors identical"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--intermediate", type=int, default=2816)
    parser.add_argument("--repeat", type=int, default=2, help="runs per tool and type; the best wall time counts")
    args = parser.parse_args()

    from ftstudio.basemodels.tiny import build_tiny_model

    with tempfile.TemporaryDirectory(prefix="ftstudio-bench-export-") as tmp:
        work = Path(tmp)
        model = build_tiny_model(work / "model", "llama", hidden_size=args.hidden, layers=args.layers, heads=16,
                                 kv_heads=8, intermediate_size=args.intermediate, dtype="bfloat16")  # fmt: skip
        from safetensors import safe_open

        with safe_open(str(model / "model.safetensors"), "pt") as f:
            params = sum(int(np.prod(f.get_slice(k).get_shape())) for k in f.keys())  # noqa: SIM118
        size = (model / "model.safetensors").stat().st_size
        print(f"model: Llama, {params / 1e6:.0f} M parameters, bf16 safetensors {size / 2**20:.0f} MiB")
        converter = llama_cpp_converter(work / "llama.cpp")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "src"),
                                                            os.environ.get("PYTHONPATH", "")])}  # fmt: skip
        print(f"baseline: llama.cpp convert_hf_to_gguf.py from llama-cpp-python {version('llama_cpp_python')}\n")
        print(f"{'type':6} {'tool':10} {'wall s':>7} {'peak RSS MiB':>13} {'file MiB':>9}")
        rows = {}
        for quant in ("f16", "q8_0"):
            for tool in ("ftstudio", "llama.cpp"):
                out = work / f"{tool}-{quant}.gguf"
                if tool == "ftstudio":
                    cmd = [sys.executable, "-c", FTSTUDIO, str(model), str(out), quant]
                else:
                    cmd = [sys.executable, str(converter), str(model), "--outfile", str(out), "--outtype", quant]
                runs = [measure(cmd, env) for _ in range(args.repeat)]
                wall, rss = min(r[0] for r in runs), max(r[1] for r in runs)
                rows[quant, tool] = (wall, rss, out.stat().st_size)
                print(f"{quant:6} {tool:10} {wall:7.2f} {rss:13.0f} {out.stat().st_size / 2**20:9.1f}")
            same, detail = same_tensors(work / f"ftstudio-{quant}.gguf", work / f"llama.cpp-{quant}.gguf")
            f, c = rows[quant, "ftstudio"], rows[quant, "llama.cpp"]
            print(f"{quant:6} ratio ftstudio/llama.cpp: time {f[0] / c[0]:.2f}, peak RSS {f[1] / c[1]:.2f}; "
                  f"tensors: {'IDENTICAL' if same else 'DIFFERENT'} ({detail})\n")  # fmt: skip
        merge_section(work, model, size, env, args.repeat)


def merge_section(work: Path, model: Path, size: int, env: dict[str, str], repeat: int) -> None:
    """Merging a rank-16 all-linear LoRA adapter: ftstudio's tensor-by-tensor merge against PEFT's merge_and_unload."""
    import torch
    from peft import LoraConfig, get_peft_model
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    peft_model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(model, dtype=torch.bfloat16),
        LoraConfig(r=16, lora_alpha=32, target_modules="all-linear"),
    )
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.02)
    peft_model.save_pretrained(work / "adapter")
    del peft_model
    print(f"merge of a rank-16 all-linear LoRA into the bf16 model ({size / 2**20:.0f} MiB of weights)")
    print(f"{'tool':24} {'wall s':>7} {'peak RSS MiB':>13} {'RSS / model size':>17}")
    results = {}
    for tool, script in (("ftstudio", MERGE_FTSTUDIO), ("peft merge_and_unload", MERGE_PEFT)):
        out = work / f"merged-{tool.split()[0]}"
        runs = [measure([sys.executable, "-c", script, str(model), str(work / "adapter"), str(out)], env)
                for _ in range(repeat)]  # fmt: skip
        wall, rss = min(r[0] for r in runs), max(r[1] for r in runs)
        results[tool] = (wall, rss, out)
        print(f"{tool:24} {wall:7.2f} {rss:13.0f} {rss * 2**20 / size:17.2f}")
    worst = 0.0
    with (
        safe_open(str(results["ftstudio"][2] / "model.safetensors"), "pt") as a,
        safe_open(str(results["peft merge_and_unload"][2] / "model.safetensors"), "pt") as b,
    ):
        for key in a.keys():  # noqa: SIM118
            worst = max(worst, float((a.get_tensor(key).float() - b.get_tensor(key).float()).abs().max()))
    f, p = results["ftstudio"], results["peft merge_and_unload"]
    print(f"ratio ftstudio/peft: time {f[0] / p[0]:.2f}, peak RSS {f[1] / p[1]:.2f}; "
          f"largest weight difference {worst:.2g} (bf16 rounding)")  # fmt: skip


if __name__ == "__main__":
    main()
