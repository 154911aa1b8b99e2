"""Merging a LoRA adapter into its base model, one tensor at a time.

The base's safetensors shards are read a tensor at a time (plain reads, see safetensors_io), each tensor gets
`W + scale·B@A` when the adapter targets it, and the result is written straight into the output shard, whose header
is known in advance (merging changes no shape or dtype). So peak memory is about one tensor, never the model twice.
The base's dtype is kept: a bf16 base gives a bf16 merged model, an f32 one stays f32.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ftstudio.errors import BadInput
from ftstudio.export.files import staged_dir
from ftstudio.export.safetensors_io import TensorEntry, read_float, read_header, read_raw
from ftstudio.progress import ProgressFn, report

# Files of a model folder that are not weights: config, tokenizer, chat template, generation config.
_SIDE_SUFFIXES = {".json", ".jinja", ".model", ".txt", ".tiktoken"}
_SKIP_FILES = {"model.safetensors.index.json", "adapter_config.json", "training_args.json", "trainer_state.json"}


def base_weight_files(base_dir: Path) -> list[Path]:
    """The base model's safetensors files in order; BadInput when it has none or is a 4-bit checkpoint."""
    config = json.loads((base_dir / "config.json").read_text(encoding="utf-8"))
    quant = config.get("quantization_config")
    if quant:
        raise BadInput(
            f"base model {base_dir} is a quantized checkpoint ({quant.get('quant_method', 'unknown')}): its weights "
            "cannot take a merge",
            hint="merge into the 16-bit original of this model (set it as the run's base model), or export the adapter",
        )
    index = base_dir / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        return [base_dir / name for name in dict.fromkeys(weight_map.values())]
    single = base_dir / "model.safetensors"
    if single.is_file():
        return [single]
    raise BadInput(
        f"base model {base_dir} has no safetensors weights",
        hint="ftstudio loads only safetensors; convert the checkpoint or pick a model that ships safetensors",
    )


class LoraWeights:
    """A PEFT LoRA adapter, ready to apply to base tensors by their names in the base checkpoint."""

    def __init__(self, adapter_dir: Path, stack: ExitStack):
        self.config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
        if self.config.get("peft_type", "LORA") != "LORA":
            raise BadInput(
                f"{adapter_dir}: adapter type {self.config.get('peft_type')!r} is not LoRA",
                hint="export it with --format adapter",
            )
        if self.config.get("use_dora"):
            raise BadInput(f"{adapter_dir}: DoRA adapters cannot be merged here", hint="export with --format adapter")
        path = adapter_dir / "adapter_model.safetensors"
        self._entries = {e.key: e for e in read_header(path)}
        self._file = stack.enter_context(open(path, "rb"))  # noqa: SIM115 (closed with the ExitStack)
        self.deltas: dict[str, tuple[str, str, bool]] = {}  # base key → (A key, B key, is_embedding)
        self.replaced: dict[str, str] = {}  # base key → adapter key holding the whole new tensor
        self.bias_deltas: dict[str, str] = {}  # base bias key → lora_B bias key
        for key in self._entries:
            name = key.removeprefix("base_model.model.")
            if name.endswith(".lora_A.weight"):
                module = name.removesuffix(".lora_A.weight")
                self.deltas[module + ".weight"] = (key, key.replace(".lora_A.weight", ".lora_B.weight"), False)
            elif name.endswith(".lora_embedding_A"):
                module = name.removesuffix(".lora_embedding_A")
                self.deltas[module + ".weight"] = (key, key.replace("lora_embedding_A", "lora_embedding_B"), True)
            elif name.endswith(".lora_B.bias"):
                self.bias_deltas[name.removesuffix(".lora_B.bias") + ".bias"] = key
            elif ".lora_" not in name:
                # modules_to_save and saved embedding layers: the adapter carries the whole tensor.
                self.replaced[name.replace(".base_layer.", ".")] = key
        self.used: set[str] = set()

    def _get(self, key: str) -> np.ndarray:
        return read_float(self._file, self._entries[key]).astype(np.float32, copy=False)

    def _scale(self, module: str, rank: int) -> float:
        alpha = self.config.get("lora_alpha", rank)
        for pattern, value in (self.config.get("alpha_pattern") or {}).items():
            if re.match(rf"(.*\.)?({pattern})$", module):
                alpha = value
        return alpha / math.sqrt(rank) if self.config.get("use_rslora") else alpha / rank

    def targets(self, key: str) -> bool:
        return key in self.deltas or key in self.replaced or key in self.bias_deltas

    def apply(self, key: str, raw: np.ndarray, dtype: str) -> np.ndarray:
        """The merged base tensor `key` given as stored (`dtype` F32/F16/BF16); computed in float32, stored back."""
        if dtype not in ("F32", "F16", "BF16"):
            raise BadInput(f"base tensor {key} is {dtype}; a LoRA merge needs a 16- or 32-bit float base")
        tensor = widen(raw, dtype)
        if key in self.replaced:
            tensor = self._get(self.replaced[key])
            self.used.add(key)
        if key in self.deltas:
            a_key, b_key, embedding = self.deltas[key]
            a, b = self._get(a_key), self._get(b_key)
            delta = (b @ a) * np.float32(self._scale(key.removesuffix(".weight"), a.shape[0]))
            if embedding or self.config.get("fan_in_fan_out"):
                delta = delta.T
            if delta.shape != tensor.shape:
                raise BadInput(
                    f"adapter tensor for {key} has shape {tuple(delta.shape)}, the base has {tuple(tensor.shape)}",
                    hint="this adapter was trained on another base model; check base_model in run.json",
                )
            tensor = tensor + delta
            self.used.add(key)
        if key in self.bias_deltas:
            b_key = self.bias_deltas[key]
            rank = self._entries[b_key.replace(".lora_B.bias", ".lora_A.weight")].shape[0]
            tensor = tensor + np.float32(self._scale(key.removesuffix(".bias"), rank)) * self._get(b_key)
            self.used.add(key)
        return narrow(tensor, dtype)

    def check_all_used(self, adapter_dir: Path) -> None:
        missing = sorted((set(self.deltas) | set(self.replaced) | set(self.bias_deltas)) - self.used)
        if missing:
            raise BadInput(
                f"{adapter_dir}: the adapter changes {len(missing)} tensors the base model lacks, e.g. {missing[0]}",
                hint="this adapter was trained on another base model; check base_model in run.json",
            )


def widen(raw: np.ndarray, dtype: str) -> np.ndarray:
    """A stored F32/F16/BF16 tensor as float32 (exact)."""
    if dtype == "BF16":
        return (raw.astype(np.uint32) << 16).view(np.float32)
    return raw.astype(np.float32)


def narrow(values: np.ndarray, dtype: str) -> np.ndarray:
    """float32 back to the stored form, rounding to nearest even as torch does (bf16 as uint16 bit patterns)."""
    if dtype == "F32":
        return values.astype(np.float32, copy=False)
    if dtype == "F16":
        return values.astype(np.float16)
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounded = ((bits + (((bits >> 16) & 1) + 0x7FFF)) >> 16).astype(np.uint16)
    nan = np.isnan(values)
    if nan.any():
        rounded[nan] = 0x7FC0
    return rounded


@dataclass(frozen=True)
class _Entry:
    source: Path
    tensor: TensorEntry

    @property
    def key(self) -> str:
        return self.tensor.key

    @property
    def nbytes(self) -> int:
        return self.tensor.nbytes


def _plan(files: list[Path]) -> list[_Entry]:
    return [_Entry(path, entry) for path in files for entry in read_header(path)]


def _shards(entries: list[_Entry], max_bytes: int) -> list[list[_Entry]]:
    shards: list[list[_Entry]] = [[]]
    size = 0
    for entry in entries:
        if shards[-1] and size + entry.nbytes > max_bytes:
            shards.append([])
            size = 0
        shards[-1].append(entry)
        size += entry.nbytes
    return shards


def _header(shard: list[_Entry]) -> bytes:
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for entry in shard:
        header[entry.key] = {
            "dtype": entry.tensor.dtype,
            "shape": list(entry.tensor.shape),
            "data_offsets": [offset, offset + entry.nbytes],
        }
        offset += entry.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    return len(raw).to_bytes(8, "little") + raw


def weights_size(base_dir: Path) -> int:
    """Bytes of the base model's weights: what a merged copy takes on disk."""
    return sum(path.stat().st_size for path in base_weight_files(base_dir))


def export_merged(
    base_dir: Path,
    adapter_dir: Path,
    dest: Path,
    *,
    max_shard_bytes: int = 2 << 30,
    progress: ProgressFn | None = None,
) -> list[Path]:
    """Write base + adapter as a model folder at `dest` (replacing it) and return the files written.

    The folder appears whole or not at all: it is built under a temporary name and renamed at the end.
    """
    files = base_weight_files(base_dir)
    entries = _plan(files)
    shards = _shards(entries, max_shard_bytes)
    total = sum(e.nbytes for e in entries)
    done = 0
    with staged_dir(dest) as work, ExitStack() as stack:
        lora = LoraWeights(adapter_dir, stack)
        readers = {path: stack.enter_context(open(path, "rb")) for path in files}
        weight_map: dict[str, str] = {}
        for number, shard in enumerate(shards, 1):
            name = "model.safetensors" if len(shards) == 1 else f"model-{number:05d}-of-{len(shards):05d}.safetensors"
            with open(work / name, "wb") as out:
                out.write(_header(shard))
                for entry in shard:
                    raw = read_raw(readers[entry.source], entry.tensor)
                    if lora.targets(entry.key):
                        raw = lora.apply(entry.key, raw, entry.tensor.dtype)
                    data = raw.reshape(-1).view(np.uint8)
                    assert data.nbytes == entry.nbytes, entry.key
                    out.write(memoryview(data))
                    weight_map[entry.key] = name
                    done += entry.nbytes
                    report(progress, "merge", _mib(done), _mib(total), f"MiB merged ({entry.key})")
        lora.check_all_used(adapter_dir)
        if len(shards) > 1:
            index = {"metadata": {"total_size": total}, "weight_map": weight_map}
            (work / "model.safetensors.index.json").write_text(json.dumps(index, indent=2), encoding="utf-8")
        copy_side_files(base_dir, work)
        copy_side_files(adapter_dir, work, only_tokenizer=True)
    return sorted(p for p in dest.iterdir() if p.is_file())


def copy_side_files(source: Path, dest: Path, *, only_tokenizer: bool = False) -> None:
    """Copy config, tokenizer, chat template and generation config (never code, never weights)."""
    for path in sorted(source.iterdir()):
        if not path.is_file() or path.suffix not in _SIDE_SUFFIXES or path.name in _SKIP_FILES:
            continue
        if only_tokenizer and not (path.name.startswith(("tokenizer", "special_tokens", "chat_template"))):
            continue
        shutil.copy2(path, dest / path.name)


def count_params(base_dir: Path) -> int:
    """Number of weights in the base model, from the safetensors headers alone."""
    return sum(math.prod(e.tensor.shape) for e in _plan(base_weight_files(base_dir)))


def _mib(size: int) -> float:
    return round(size / 2**20, 2)
