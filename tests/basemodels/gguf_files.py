"""GGUF files for the import tests, made from the real installed GGUFs with the `gguf` package's own reader/writer.

`rewrite_gguf` copies a GGUF's metadata and tensors into a new file, optionally keeping only the first layers (a
real tokenizer and real weights, dequantized in seconds), dropping the tokenizer (which the refusals never reach,
and whose 49,152 strings are most of the parsing time), renaming the architecture, or re-declaring a tensor as
another quantization type: the inputs the refusals must catch. `ollama_store` lays a GGUF out as `ollama pull`
does.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter


def rewrite_gguf(
    src: Path,
    dest: Path,
    *,
    layers: int | None = None,
    architecture: str | None = None,
    retype: dict[str, str] | None = None,
    tokenizer: bool = True,
) -> Path:
    reader = GGUFReader(src)
    old_arch = bytes(reader.fields["general.architecture"].parts[-1]).decode()
    arch = architecture or old_arch
    writer = GGUFWriter(dest, arch)
    for name, found in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        if not tokenizer and name.startswith("tokenizer."):
            continue
        value = found.contents()
        if layers is not None and name == f"{old_arch}.block_count":
            value = layers
        if name.startswith(f"{old_arch}."):
            name = arch + name[len(old_arch) :]
        vtype = found.types[0]
        sub = found.types[-1] if vtype == GGUFValueType.ARRAY else None
        writer.add_key_value(name, value, vtype, sub_type=sub)
    for tensor in reader.tensors:
        if layers is not None and tensor.name.startswith("blk.") and int(tensor.name.split(".")[1]) >= layers:
            continue
        qtype = tensor.tensor_type
        data = tensor.data
        if retype and tensor.name in retype:
            qtype = GGMLQuantizationType[retype[tensor.name]]
            block, size = GGML_QUANT_SIZES[qtype]
            rows = int(np.prod(tensor.shape[1:])) if len(tensor.shape) > 1 else 1
            data = np.zeros((rows, int(tensor.shape[0]) // block * size), dtype=np.uint8)
        writer.add_tensor(tensor.name, data, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return dest


def ollama_store(root: Path, gguf: Path, name: str = "smol", tag: str = "latest", ns: str = "library") -> Path:
    """An Ollama model store as `ollama pull` leaves it: a manifest naming the GGUF blob by its digest."""
    digest = hashlib.sha256(gguf.read_bytes()).hexdigest()
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    shutil.copy(gguf, root / "blobs" / f"sha256-{digest}")
    template = b"{{ .Prompt }}"
    template_digest = hashlib.sha256(template).hexdigest()
    (root / "blobs" / f"sha256-{template_digest}").write_bytes(template)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": "sha256:" + "0" * 64,
                   "size": 2},
        "layers": [
            {"mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{digest}",
             "size": gguf.stat().st_size},
            {"mediaType": "application/vnd.ollama.image.template", "digest": f"sha256:{template_digest}",
             "size": len(template)},
        ],
    }  # fmt: skip
    path = root / "manifests" / "registry.ollama.ai" / ns / name / tag
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest))
    return root
