"""What this machine offers for training: CUDA and its memory, and system RAM. Other stages reuse it (training picks
Unsloth only when CUDA is present)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Hardware:
    """Memory in bytes. `vram_*` are 0 without CUDA."""

    cuda: bool
    gpu_name: str | None
    vram_total: int
    vram_free: int
    ram_total: int
    ram_available: int
    bf16: bool = False

    @property
    def device(self) -> str:
        return "cuda" if self.cuda else "cpu"

    def describe(self) -> str:
        gib = 2**30
        if self.cuda:
            return f"{self.gpu_name} ({self.vram_total / gib:.1f} GiB VRAM), {self.ram_total / gib:.1f} GiB RAM"
        return f"CPU only, {self.ram_total / gib:.1f} GiB RAM ({self.ram_available / gib:.1f} GiB available)"

    def to_dict(self) -> dict:
        return {**asdict(self), "device": self.device}


def gpu_driver_present() -> bool:
    """A cheap look for an NVIDIA (or ROCm) driver, so a CPU-only machine answers without importing torch."""
    import os
    import sys

    if sys.platform == "win32":
        import ctypes.util

        return ctypes.util.find_library("nvcuda") is not None
    # The driver's device files (WSL 2: /dev/dxg). Not ctypes.util.find_library("cuda"): on Linux it runs ldconfig
    # and gcc: about 50 ms of every `ftstudio models`.
    devices = ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg")
    return any(os.path.exists(p) for p in devices)


def detect_hardware() -> Hardware:
    """Look at this machine now: CUDA through torch when a driver is there and torch sees a device; RAM by psutil."""
    import psutil

    memory = psutil.virtual_memory()
    cuda, name, total, free, bf16 = False, None, 0, 0, False
    if not gpu_driver_present():
        return Hardware(cuda, name, total, free, int(memory.total), int(memory.available), bf16)
    try:
        import torch

        if torch.cuda.is_available():
            cuda = True
            name = torch.cuda.get_device_name(0)
            free, total = torch.cuda.mem_get_info(0)
            bf16 = bool(torch.cuda.is_bf16_supported())
    except ImportError:  # torch is a dependency, but the checks still answer without it
        pass
    return Hardware(cuda, name, int(total), int(free), int(memory.total), int(memory.available), bf16)
