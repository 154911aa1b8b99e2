"""Measure the peak memory of a few LoRA training steps on a model folder, in a fresh process.

Run: python tests/basemodels/measure_lora_peak.py FOLDER SEQ_LEN BATCH RANK CHECKPOINTING(0|1)
Prints one JSON object: the resident memory after the libraries loaded, and the peak after the steps (bytes).
"""

import json
import sys


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024  # kB
    raise RuntimeError(f"no {field} in /proc/self/status")


def start_measuring() -> int:
    """The resident size now, with the peak (VmHWM) reset to it, so import-time spikes do not count."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:  # kernels without peak reset: the peak since start-up is the best there is
        pass
    return _status("VmRSS")


def rss_peak() -> int:
    return _status("VmHWM")


def main() -> None:
    folder, seq_len, batch, rank, checkpointing = sys.argv[1], *map(int, sys.argv[2:6])
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    # Warm the autograd engine and the thread pools on something tiny, so their one-off cost is in the baseline.
    x = torch.randn(64, 64, requires_grad=True)
    (x @ x).sum().backward()
    baseline = start_measuring()

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=targets))
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    ids = torch.randint(0, model.config.vocab_size, (batch, seq_len))
    losses = []
    for _ in range(2):  # the peak comes in the first step; the second shows the adapter learned
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    result = {"baseline": baseline, "peak": rss_peak(), "losses": losses, "trainable": trainable, "total": total}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
