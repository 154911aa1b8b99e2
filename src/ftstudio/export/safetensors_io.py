"""Reading safetensors tensors one at a time with plain file reads, into numpy, without torch.

`safetensors.safe_open` maps the whole file: every tensor read stays resident (and counted in RSS) until the file is
closed, so streaming a model through it still ends up holding all of it. Reading each tensor's bytes with `readinto`
keeps memory at one tensor. bf16 has no numpy type; it is widened to float32 exactly (its bits are the top half of
a float32), as torch's `.to(torch.float32)` does.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

_NUMPY = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
          "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_, "BF16": np.uint16}  # fmt: skip
_SIZES = {"F64": 8, "I64": 8, "F32": 4, "I32": 4, "F16": 2, "BF16": 2, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


@dataclass(frozen=True)
class TensorEntry:
    key: str
    dtype: str  # safetensors dtype name: F32, F16, BF16…
    shape: tuple[int, ...]
    start: int  # absolute offset in the file
    nbytes: int


def read_header(path: Path) -> list[TensorEntry]:
    """The tensors of one safetensors file, in file order."""
    with open(path, "rb") as f:
        size = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(size))
    entries = []
    for key, info in header.items():
        if key == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        entries.append(TensorEntry(key, info["dtype"], tuple(info["shape"]), 8 + size + begin, end - begin))
    entries.sort(key=lambda e: e.start)
    if any(e.nbytes != _SIZES.get(e.dtype, 0) * math.prod(e.shape) for e in entries):
        raise ValueError(f"{path}: a tensor's size does not match its dtype and shape")
    return entries


def read_raw(f: BinaryIO, entry: TensorEntry) -> np.ndarray:
    """The tensor's values in its own dtype (bf16 as its uint16 bit patterns)."""
    data = np.empty(entry.shape, dtype=_NUMPY[entry.dtype])
    f.seek(entry.start)
    if f.readinto(memoryview(data.reshape(-1)).cast("B")) != entry.nbytes:
        raise ValueError(f"{getattr(f, 'name', 'file')}: truncated data for tensor {entry.key}")
    return data


def read_float(f: BinaryIO, entry: TensorEntry) -> np.ndarray:
    """The tensor as f16 or f32 (f16 and f32 as stored, anything else widened to f32)."""
    data = read_raw(f, entry)
    if entry.dtype == "BF16":
        return (data.astype(np.uint32) << 16).view(np.float32)
    if data.dtype in (np.float16, np.float32):
        return data
    return data.astype(np.float32)
