"""`accelerate launch` configuration files for training on several devices, written for the user to launch with.

- `ddp`: data parallel, one process per device. accelerate's `MULTI_GPU` type launches through torchrun, which
  also works on a CPU-only machine (ftstudio then uses gloo); its `--cpu` flag instead starts a single process
  (its multi-CPU mode expects `mpirun`), which is why this config does not set it.
- `fsdp`: as ddp, and the frozen base model's weights are sharded across the processes (FSDP2, one unit per
  decoder layer; the LoRA weights stay whole on every process, see train/sharding.py).
- `deepspeed-zero2`, `deepspeed-zero3`: DeepSpeed configurations for CUDA machines. ftstudio's loop does not
  drive a DeepSpeed engine yet, so `ftstudio train` refuses to run under them (use `fsdp` to shard the base).

Every file is read back through accelerate's own config loader before it is reported as written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ftstudio.errors import BadInput

KINDS = ("ddp", "fsdp", "deepspeed-zero2", "deepspeed-zero3")


def accelerate_config(kind: str, num_processes: int) -> dict[str, Any]:
    """The configuration of `kind` (one of KINDS) for `num_processes` processes on one machine."""
    if kind not in KINDS:
        raise BadInput(f"unknown accelerate config {kind!r}", hint=f"use one of: {', '.join(KINDS)}")
    if num_processes < 1:
        raise BadInput(f"processes = {num_processes}", hint="use one process per device (at least 1)")
    config: dict[str, Any] = {
        "compute_environment": "LOCAL_MACHINE",
        "debug": False,
        "distributed_type": "MULTI_GPU",
        "machine_rank": 0,
        "main_process_port": 0,  # accelerate picks a free port: two runs on one machine do not collide
        "main_training_function": "main",
        "mixed_precision": "no",  # ftstudio picks the dtype itself (bf16 on CUDA, fp32 on the CPU)
        "num_machines": 1,
        "num_processes": num_processes,
        "rdzv_backend": "static",
        "same_network": True,
        "use_cpu": False,
    }
    if kind == "fsdp":
        config["distributed_type"] = "FSDP"
        config["fsdp_config"] = {
            "fsdp_version": 2,
            "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "fsdp_reshard_after_forward": True,
            "fsdp_state_dict_type": "FULL_STATE_DICT",
            "fsdp_cpu_ram_efficient_loading": False,
            "fsdp_offload_params": False,
        }
    elif kind.startswith("deepspeed"):
        stage = int(kind[-1])
        config["distributed_type"] = "DEEPSPEED"
        config["mixed_precision"] = "bf16"
        config["deepspeed_config"] = {
            "zero_stage": stage,
            "gradient_accumulation_steps": 1,
            "gradient_clipping": 1.0,
            "offload_optimizer_device": "none",
            "offload_param_device": "none",
            "zero3_init_flag": stage == 3,
            **({"zero3_save_16bit_model": True} if stage == 3 else {}),
        }
    return config


def write_accelerate_config(kind: str, path: Path, num_processes: int) -> Path:
    """Write the config as YAML to `path`, check it loads with accelerate's loader, and return the path."""
    import yaml
    from accelerate.commands.config.config_args import load_config_from_file

    config = accelerate_config(kind, num_processes)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    loaded = load_config_from_file(str(path))
    if str(loaded.distributed_type).rsplit(".", 1)[-1] != config["distributed_type"]:
        raise RuntimeError(f"{path}: accelerate read distributed_type {loaded.distributed_type}")
    return path


def launch_command(path: Path, project: str) -> str:
    """The command that trains `project` with the config at `path`."""
    return f"accelerate launch --config_file {path} -m ftstudio train {project}"
