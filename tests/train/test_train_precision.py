"""train.precision: bf16 autocast on CPUs with bfloat16 matrix instructions, refused elsewhere when asked for."""

from __future__ import annotations

import threading

import pytest
import torch

from ftstudio.errors import Unavailable
from ftstudio.train import backends
from ftstudio.train.runner import train
from ftstudio.train.runs import load_run

FAST = {"learning_rate": 3e-3, "batch_size": 4, "warmup_ratio": 0.0, "log_every": 1}
needs_bf16 = pytest.mark.skipif(not backends.cpu_bf16_units(), reason="this CPU has no AMX-BF16 / AVX512-BF16")


def test_bf16_is_refused_on_a_cpu_without_bf16_units_and_auto_stays_fp32():
    with pytest.raises(Unavailable, match=r"train\.precision=bf16.*AMX-BF16 or AVX512-BF16") as caught:
        backends.choose_precision("bf16", cuda_dtype=None, bf16_units=[])
    assert "precision=fp32" in caught.value.hint
    assert backends.choose_precision("auto", cuda_dtype=None, bf16_units=["avx512_bf16"]).name == "fp32"
    chosen = backends.choose_precision("bf16", cuda_dtype=None, bf16_units=["amx_bf16"])
    assert chosen.autocast and "amx_bf16" in chosen.reason
    assert backends.choose_precision("fp32", cuda_dtype="bf16", bf16_units=[]).name == "bf16"  # the GPU's dtype


def test_detected_units_agree_with_proc_cpuinfo():
    with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
        flags = next(line.split(":", 1)[1].split() for line in f if line.startswith("flags"))
    assert backends.cpu_bf16_units() == [n for n in ("amx_bf16", "avx512_bf16") if n in flags]


@needs_bf16
def test_bf16_losses_stay_close_to_fp32_with_fp32_adapter_weights_that_merge_and_resume(make_project):
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    project = make_project("llama", max_steps=8, **FAST)
    fp32 = train(project, project.settings().train.model_copy(update={"precision": "fp32"}))
    settings = project.settings().train.model_copy(update={"precision": "bf16"})
    bf16 = train(project, settings)
    record = load_run(project, bf16.run_id).record
    assert (record.precision, load_run(project, fp32.run_id).record.precision) == ("bf16", "fp32")

    def losses(result):
        return [m["loss"] for m in load_run(project, result.run_id).metrics() if "loss" in m]

    # bf16 keeps 8 significant bits (a relative rounding of 2^-9 per product) and the sums are fp32, so a loss of
    # about 5 moves by a few hundredths; 3 % holds 8 steps of training on the tiny model with room, while a broken
    # path (weights stepped in bf16, a lost gradient) leaves the fp32 curve after the first steps.
    a, b = losses(fp32), losses(bf16)
    assert len(a) == len(b) == 8 and a[-1] < a[0] and b[-1] < b[0]
    for x, y in zip(a, b, strict=True):
        assert y == pytest.approx(x, rel=0.03)
    assert a != b  # autocast really ran: bf16 rounding changes the losses

    saved = load_file(str(bf16.run_dir / "adapter" / "adapter_model.safetensors"))
    assert saved and all(w.dtype == torch.float32 for w in saved.values())  # the master weights stay fp32
    base = project.settings().base_model.model
    merged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), str(bf16.run_dir / "adapter"))
    merged = merged.merge_and_unload().eval()
    plain = AutoModelForCausalLM.from_pretrained(base).eval()
    ids = torch.tensor([[5, 80, 120, 7, 300, 22]])
    with torch.no_grad():
        assert (merged(ids).logits - plain(ids).logits).abs().max() > 1e-3
        assert merged.model.layers[0].self_attn.q_proj.weight.dtype == torch.float32

    cancel = threading.Event()

    def stop_after_three(event):
        if event.stage == "train" and event.done == 3:
            cancel.set()

    stopped = train(project, settings, progress=stop_after_three, cancel=cancel)
    assert stopped.status == "stopped"
    resumed = train(project, settings, resume=stopped.run_id)
    assert resumed.status == "completed" and load_run(project, resumed.run_id).record.precision == "bf16"
    assert resumed.final_train_loss == pytest.approx(bf16.final_train_loss, rel=1e-4)
