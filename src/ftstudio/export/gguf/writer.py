"""Writing a model folder (safetensors + tokenizer) as one GGUF file, a tensor at a time.

The plan (every tensor's GGUF name, shape and type) comes from the safetensors headers alone, so the GGUF header is
written first and then each tensor is read, re-laid-out, quantized and appended: memory holds one tensor at a time.
The file is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import json
import re
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

import gguf
import numpy as np

from ftstudio.errors import BadInput
from ftstudio.export.files import staged_file
from ftstudio.export.gguf import arch, quantize
from ftstudio.export.gguf.tokenizer import read_vocab, write_vocab
from ftstudio.export.safetensors_io import TensorEntry, read_float, read_header
from ftstudio.families.base import Family
from ftstudio.progress import ProgressFn, report


@dataclass(frozen=True)
class _Tensor:
    gguf_name: str
    source: Path | None  # None: computed (rope_freqs, rope factors): `computed` holds it
    entry: TensorEntry | None
    shape: tuple[int, ...]
    qtype: gguf.GGMLQuantizationType
    computed: np.ndarray | None = None


_TOKEN_EMBD = gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.TOKEN_EMBD] + ".weight"
_OUTPUT = gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.OUTPUT] + ".weight"


def _weight_files(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        return [folder / n for n in dict.fromkeys(json.loads(index.read_text())["weight_map"].values())]
    return [folder / "model.safetensors"]


def _plan(folder: Path, config: dict, family: Family, qtype: gguf.GGMLQuantizationType) -> list[_Tensor]:
    names = gguf.TensorNameMap(family.layout.model_arch, config["num_hidden_layers"])
    tied = config.get("tie_word_embeddings", False) or family.layout.lm_head == "embedding"
    plan = []
    for path in _weight_files(folder):
        for entry in read_header(path):
            key = entry.key
            if key.endswith(("rotary_emb.inv_freq", ".masked_bias")) or (tied and key == "lm_head.weight"):
                continue
            name = names.get_name(key, try_suffixes=(".weight", ".bias"))
            if name is None:
                raise BadInput(
                    f"{path.name}: tensor {key!r} has no GGUF name for {config['model_type']}",
                    hint="export with --format merged; this checkpoint has parts llama.cpp does not know",
                )
            squeezed = tuple(d for d in entry.shape if d != 1) or (1,)
            plan.append(_Tensor(name, path, entry, squeezed, quantize.tensor_type(name, squeezed, qtype)))
    if family.layout.lm_head == "required" and not any(t.gguf_name == _OUTPUT for t in plan):
        # Tied (or saved without lm_head): this loader falls back to nothing, so the embedding is the output too.
        embedding = next(t for t in plan if t.gguf_name == _TOKEN_EMBD)
        plan.append(replace(embedding, gguf_name=_OUTPUT, qtype=quantize.tensor_type(_OUTPUT, embedding.shape, qtype)))
    computed = [_Tensor(name, None, None, data.shape, gguf.GGMLQuantizationType.F32, data)
                for name, data in arch.extra_tensors(family, config).items()]  # fmt: skip
    return computed + plan


def _model_name(name: str, specials_rstrip: bool) -> str:
    """general.name, minding that llama.cpp strips whitespace after special tokens when it contains "phi3".

    That rule matches Phi-3's own tokenizer (its special tokens rstrip); for any other tokenizer the name must not
    trigger it, or llama.cpp would tokenize chat prompts differently from transformers.
    """
    if specials_rstrip:
        return name if re.search(r"phi-?3", name, re.I) else f"{name} phi3"
    return re.sub(r"(phi)(-?3)", r"\1 \2", name, flags=re.I)


def export_gguf(
    folder: Path,
    dest: Path,
    quant: str,
    *,
    name: str | None = None,
    progress: ProgressFn | None = None,
) -> Path:
    """Write the HF model in `folder` as GGUF of type `quant` (f32, f16, bf16, q8_0, q4_0) at `dest`."""
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    family = arch.family_for(config)
    qtype, file_type = quantize.PLAIN[quant]
    vocab = read_vocab(folder, config["vocab_size"])
    plan = _plan(folder, config, family, qtype)

    with staged_file(dest) as tmp:
        writer = gguf.GGUFWriter(tmp, family.layout.arch)
        writer.add_name(_model_name(name or folder.name, vocab.specials_rstrip))
        writer.add_file_type(int(file_type))
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        arch.write_metadata(writer, family, config)
        write_vocab(writer, vocab)
        for t in plan:
            writer.add_tensor_info(
                t.gguf_name, t.shape, np.dtype(np.float32), quantize.nbytes(t.shape, t.qtype), t.qtype
            )
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        total = sum(quantize.nbytes(t.shape, t.qtype) for t in plan)
        done = 0
        with ExitStack() as files:
            readers = {p: files.enter_context(open(p, "rb")) for p in dict.fromkeys(t.source for t in plan if t.source)}
            for t in plan:
                if t.source is None or t.entry is None:
                    data = t.computed
                else:
                    # As llama.cpp's converter: f16 and f32 as they are, anything else through f32.
                    raw = read_float(readers[t.source], t.entry).reshape(t.shape)
                    data = arch.transform(family, config, t.gguf_name, raw)
                writer.write_tensor_data(quantize.encode(data, t.qtype))
                del data
                done += quantize.nbytes(t.shape, t.qtype)
                report(progress, "gguf", _mib(done), _mib(total), f"MiB written ({t.gguf_name})")
        writer.close()
    return dest


def _mib(size: int) -> float:
    return round(size / 2**20, 2)
