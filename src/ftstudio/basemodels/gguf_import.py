"""A GGUF file or an installed Ollama model as the base model: dequantized once into a cached Hugging Face folder.

A spec is a path to a GGUF file (`~/models/SmolLM2.Q4_1.gguf`) or `ollama:NAME[:TAG]`, read straight from Ollama's
model store (`$OLLAMA_MODELS`, else `~/.ollama/models`; no Ollama server is needed). `import_gguf` checks the file
first (a GGUF at all, whole, of quantization types the `gguf` package can dequantize, of an architecture transformers
can read from GGUF), then has transformers dequantize it and writes an ordinary folder: `config.json` (without the
GGUF quantization config), safetensors weights (f32, or bf16 when the GGUF's weights are bf16), the tokenizer files,
`generation_config.json` and the chat template from the GGUF's `tokenizer.chat_template`. Every other stage then
treats that folder like any local model; the project keeps the user's spec, not the cache path.

The cache is `<cache>/gguf/<sha256 of the GGUF>/`, `<cache>` being `$FTSTUDIO_CACHE`, else `$XDG_CACHE_HOME/ftstudio`,
else `~/.cache/ftstudio`. An Ollama blob is named by its digest (Ollama checked it when it pulled), so it is never
read twice. A plain file is hashed once; its digest is then remembered against the file's identity (path, size,
modification time in ns) in `<cache>/gguf/identities/`, because hashing a multi-GB file on every train or export
would take longer than the check it guards, and an edit that keeps size and nanosecond mtime does not happen by
accident. A folder is built under a `.partial-…` name and renamed into place last, so its existence means the import
completed: a killed or failed import leaves no cached folder (its leftovers are swept by the next import). A folder
written by an older import (its record's `format` below `IMPORT_FORMAT`) is built again and replaced, so a fix to
the import (such as a family's chat template) reaches models imported before it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from ftstudio.errors import BadInput, FtError, NotFound
from ftstudio.families import for_config
from ftstudio.progress import ProgressFn, report

OLLAMA_PREFIX = "ollama:"
OLLAMA_REGISTRY = "registry.ollama.ai"
OLLAMA_MODEL_LAYER = "application/vnd.ollama.image.model"
GGUF_MAGIC = b"GGUF"
RECORD_FILE = "ftstudio-gguf.json"  # written last inside the folder: the import's own account of itself
# Raise when a cached folder's contents change meaning (2: the families' templates replace a GGUF's broken ones);
# records without the field are format 1.
IMPORT_FORMAT = 2
HASH_CHUNK = 8 << 20
# transformers reads these from GGUF, but they are encoder(-decoder)s, not causal LMs to fine-tune.
NOT_CAUSAL = {"t5", "t5encoder", "umt5"}
_NAME_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class GgufSource:
    """Where a spec's GGUF lies. `digest` is known without reading for an Ollama blob, else None."""

    spec: str
    kind: str  # "gguf" (a file) or "ollama" (a model in Ollama's store)
    path: Path
    digest: str | None = None
    store: Path | None = None


@dataclass(frozen=True)
class GgufInfo:
    """What the GGUF's header says: enough to refuse it before any dequantizing."""

    architecture: str
    name: str | None
    tensor_types: dict[str, int]  # quantization type name -> number of tensors
    tensor_count: int
    size: int
    chat_template: str | None


@dataclass(frozen=True)
class ImportResult:
    """An imported GGUF: the cached folder, and whether this call built it or found it."""

    spec: str
    kind: str
    source: str
    digest: str
    folder: Path
    cached: bool
    record: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "folder": str(self.folder)}


def is_gguf_spec(spec: str) -> bool:
    """True for `ollama:…`, a name ending in .gguf, or an existing file (a folder or hub id is not a GGUF spec)."""
    spec = spec.strip()
    if spec.startswith(OLLAMA_PREFIX):
        return True
    if spec.lower().endswith(".gguf"):
        return True
    return Path(spec).expanduser().is_file()


def cache_root() -> Path:
    """ftstudio's cache folder: $FTSTUDIO_CACHE, else $XDG_CACHE_HOME/ftstudio, else ~/.cache/ftstudio."""
    if os.environ.get("FTSTUDIO_CACHE"):
        return Path(os.environ["FTSTUDIO_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "ftstudio"
    return Path.home() / ".cache" / "ftstudio"


def ollama_store() -> Path:
    """Ollama's model store, as Ollama itself finds it: $OLLAMA_MODELS, else ~/.ollama/models."""
    if os.environ.get("OLLAMA_MODELS"):
        return Path(os.environ["OLLAMA_MODELS"]).expanduser()
    return Path.home() / ".ollama" / "models"


def locate(spec: str) -> GgufSource:
    """The GGUF file a spec names. Raises NotFound for a missing file or an Ollama model not in the store."""
    spec = spec.strip()
    if spec.startswith(OLLAMA_PREFIX):
        return _locate_ollama(spec)
    path = Path(spec).expanduser().resolve()
    if not path.is_file():
        raise NotFound(f"no GGUF file {path}", hint="pass the path of an existing .gguf file, or ollama:NAME")
    return GgufSource(spec, "gguf", path)


def _ollama_name(spec: str) -> tuple[list[str], str]:
    name = spec[len(OLLAMA_PREFIX) :].strip()
    head, _, last = name.rpartition("/")
    base, _, tag = last.partition(":")
    parts = [p for p in head.split("/") if head] + [base]
    tag = tag or "latest"
    if not (1 <= len(parts) <= 3) or not all(_NAME_PART.match(p) for p in [*parts, tag]):
        raise BadInput(
            f"{spec!r} is not an Ollama model name",
            hint="write ollama:NAME or ollama:NAME:TAG (e.g. ollama:smollm2:135m), as `ollama list` shows it",
        )
    if len(parts) == 1:
        parts = [OLLAMA_REGISTRY, "library", *parts]
    elif len(parts) == 2:
        parts = [OLLAMA_REGISTRY, *parts]
    return parts, tag


def _locate_ollama(spec: str) -> GgufSource:
    parts, tag = _ollama_name(spec)
    store = ollama_store()
    manifest = store.joinpath("manifests", *parts, tag)
    short = "/".join(parts[2:] if parts[:2] == [OLLAMA_REGISTRY, "library"] else parts) + f":{tag}"
    if not manifest.is_file():
        installed = installed_ollama_models(store)
        listing = f"; installed there: {', '.join(installed[:10])}" if installed else "; it holds no models"
        raise NotFound(
            f"Ollama model {short} is not installed in the store {store} (no {manifest})",
            hint=f"`ollama pull {short}`, or set OLLAMA_MODELS to the store that holds it{listing}",
        )
    try:
        layers = json.loads(manifest.read_text(encoding="utf-8")).get("layers") or []
        digest = next(layer["digest"] for layer in layers if layer.get("mediaType") == OLLAMA_MODEL_LAYER)
    except (ValueError, AttributeError, KeyError, TypeError, StopIteration) as exc:
        raise BadInput(
            f"{manifest}: not an Ollama manifest with a model layer ({OLLAMA_MODEL_LAYER})",
            hint=f"the store is damaged or this is not a language model: `ollama pull {short}` again",
        ) from exc
    algo, _, hexdigest = str(digest).partition(":")
    if algo != "sha256" or not re.fullmatch(r"[0-9a-f]{64}", hexdigest):
        raise BadInput(f"{manifest}: model layer digest {digest!r} is not sha256:<64 hex digits>",
                       hint=f"`ollama pull {short}` again")  # fmt: skip
    blob = store / "blobs" / f"sha256-{hexdigest}"
    if not blob.is_file():
        raise NotFound(f"Ollama model {short}: its weights {blob} are missing from the store",
                       hint=f"`ollama pull {short}` again")  # fmt: skip
    return GgufSource(spec, "ollama", blob, hexdigest, store)


def installed_ollama_models(store: Path | None = None) -> list[str]:
    """The models of an Ollama store as `ollama list` names them (NAME:TAG, library models without a prefix)."""
    root = (store or ollama_store()) / "manifests"
    names = []
    for manifest in sorted(root.glob("*/*/*/*")):
        if manifest.is_file():
            host, ns, name, tag = manifest.relative_to(root).parts
            prefix = "" if (host, ns) == (OLLAMA_REGISTRY, "library") else (
                f"{ns}/" if host == OLLAMA_REGISTRY else f"{host}/{ns}/")  # fmt: skip
            names.append(f"{prefix}{name}:{tag}")
    return names


@lru_cache(maxsize=1)
def dequantizable_types() -> frozenset[str]:
    """Quantization types the `gguf` package can dequantize, asked of the package itself (one zero block each)."""
    import numpy as np
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
    from gguf.quants import dequantize

    names = set()
    for qtype in GGMLQuantizationType:
        block, size = GGML_QUANT_SIZES.get(qtype, (0, 0))
        if not size:
            continue
        try:
            dequantize(np.zeros((1, size), dtype=np.uint8), qtype)
        except (NotImplementedError, ValueError, TypeError):
            continue
        names.add(qtype.name)
    return frozenset(names)


def transformers_gguf_architectures() -> list[str]:
    """The GGUF architectures transformers can turn into a model (its own list, less its non-model sections)."""
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    return [a for a in GGUF_SUPPORTED_ARCHITECTURES if a not in ("general", "tokenizer")]


def _transformers_name(architecture: str) -> str:
    # llama.cpp writes a few architectures without transformers' underscore (qwen2moe, gpt-oss, minimax-m2).
    return architecture.replace("-", "_").replace("moe", "_moe").replace("__", "_")


def inspect_gguf(path: Path, label: str | None = None) -> GgufInfo:
    """Read a GGUF's header and refuse what cannot be imported, before any dequantizing.

    Raises BadInput naming the file for: not a GGUF, a truncated or damaged file, a quantization type unknown to the
    `gguf` package or one it cannot dequantize, an architecture transformers cannot read from GGUF.
    """
    from gguf import GGUFReader

    label = label or str(path)
    try:
        with path.open("rb") as f:
            magic = f.read(4)
        size = path.stat().st_size
    except OSError as exc:
        raise NotFound(f"cannot read {label}: {exc.strerror or exc}", hint="check the path and its permissions") \
            from exc  # fmt: skip
    if magic != GGUF_MAGIC:
        raise BadInput(
            f"{label} is not a GGUF file (it starts with {magic!r}, not {GGUF_MAGIC!r})",
            hint="a base model is a hub id, a Hugging Face folder, a .gguf file or ollama:NAME",
        )
    try:
        reader = GGUFReader(path)
    except ValueError as exc:
        if "GGMLQuantizationType" in str(exc):
            raise BadInput(
                f"{label}: a tensor has a quantization type the gguf package does not know ({exc})",
                hint="the file is newer than the installed gguf package: upgrade it (pip install -U gguf), "
                "or use the model's Hugging Face repository",
            ) from exc
        raise _damaged(label, exc) from exc
    except (IndexError, OSError, UnicodeDecodeError, OverflowError) as exc:
        raise _damaged(label, exc) from exc
    for tensor in reader.tensors:
        if tensor.data_offset + tensor.n_bytes > size or tensor.data.nbytes < tensor.n_bytes:
            raise _damaged(label, f"tensor {tensor.name} ends past the end of the file ({size} bytes)")
    types: dict[str, int] = {}
    for tensor in reader.tensors:
        types[tensor.tensor_type.name] = types.get(tensor.tensor_type.name, 0) + 1
    unsupported = sorted(set(types) - dequantizable_types())
    if unsupported:
        raise BadInput(
            f"{label}: quantization type {', '.join(unsupported)} cannot be dequantized by the installed gguf package",
            hint=f"use a GGUF quantized as one of {', '.join(sorted(dequantizable_types()))} (Q8_0 or Q4_K_M are "
            "common), or the model's Hugging Face repository",
        )
    architecture = _field_text(reader, "general.architecture")
    if not architecture:
        raise BadInput(f"{label} has no general.architecture", hint="the file is damaged: fetch it again")
    supported = transformers_gguf_architectures()
    import transformers

    if architecture in NOT_CAUSAL:
        raise BadInput(
            f"{label} is a {architecture} model, which is not a causal (text-generation) language model",
            hint="pick a decoder model such as SmolLM2, Qwen or Gemma (see `ftstudio models`)",
        )
    if architecture not in supported and _transformers_name(architecture) not in supported:
        raise BadInput(
            f"{label}: transformers {transformers.__version__} cannot dequantize the GGUF architecture "
            f"{architecture!r} (it reads {', '.join(a for a in supported if a not in NOT_CAUSAL)})",
            hint="use the model's original Hugging Face repository or folder (safetensors) as the base model "
            "instead of its GGUF; check it with `ftstudio models check ORG/NAME`",
        )
    if not reader.tensors:
        raise _damaged(label, "it holds no tensors")
    return GgufInfo(architecture, _field_text(reader, "general.name"), types, len(reader.tensors), size,
                    _field_text(reader, "tokenizer.chat_template"))  # fmt: skip


def _damaged(label: str, why: object) -> BadInput:
    return BadInput(f"{label} is truncated or damaged: {why}",
                    hint="download or copy it again (compare its size and checksum with the original)")  # fmt: skip


def _field_text(reader, key: str) -> str | None:
    found = reader.fields.get(key)
    if found is None or not found.data:
        return None
    try:
        return bytes(found.parts[found.data[0]]).decode("utf-8")
    except (UnicodeDecodeError, TypeError, IndexError):
        return None


def import_gguf(spec: str, *, progress: ProgressFn | None = None) -> ImportResult:
    """The cached Hugging Face folder of a GGUF spec, built now (dequantized once) when it is not cached yet.

    Events: `gguf-hash` (bytes, a file seen for the first time), `gguf-dequantize`, `gguf-write`, `gguf-done`.
    Raises NotFound/BadInput (exit 2) as `locate` and `inspect_gguf` do, or when transformers cannot read the file;
    nothing is cached then.
    """
    source = locate(spec)
    label = source.spec if source.kind == "ollama" else str(source.path)
    gguf_dir = cache_root() / "gguf"
    digest = source.digest or _file_digest(source.path, gguf_dir / "identities", progress)
    folder = gguf_dir / digest
    record = _current_record(folder)
    if record is not None:
        report(progress, "gguf-done", 1, 1, f"{label}: already imported ({folder})", folder=str(folder), cached=True)
        return ImportResult(source.spec, source.kind, str(source.path), digest, folder, True, record)
    info = inspect_gguf(source.path, label)
    gguf_dir.mkdir(parents=True, exist_ok=True)
    _sweep_partials(gguf_dir)
    work = Path(tempfile.mkdtemp(dir=gguf_dir, prefix=f".partial-{digest[:16]}-{os.getpid()}-"))
    older = work.with_name(work.name + "-old")  # a partial's name: swept with them if this process dies
    try:
        record = _build_folder(source, info, digest, work, label, progress)
        if folder.exists():  # an older import's folder, set aside before the new one takes its name
            os.rename(folder, older)
        try:
            os.rename(work, folder)
        except OSError:
            if _current_record(folder) is None:  # another import of the same file finished first otherwise
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(older, ignore_errors=True)
    report(progress, "gguf-done", 1, 1, f"{label}: imported into {folder}", folder=str(folder), cached=False)
    return ImportResult(source.spec, source.kind, str(source.path), digest, folder, False, record)


def cached_folder(spec: str) -> Path | None:
    """The imported folder of a GGUF spec if it is already cached, found without hashing; else None (also for a
    spec that does not locate: the import itself says why)."""
    try:
        source = locate(spec)
    except FtError:
        return None
    gguf_dir = cache_root() / "gguf"
    digest = source.digest or _known_digest(source.path, gguf_dir / "identities")
    folder = gguf_dir / digest if digest else None
    return folder if folder is not None and _current_record(folder) is not None else None


def _current_record(folder: Path) -> dict[str, Any] | None:
    """The import record of a cached folder written by this import's format; None when absent, damaged or older."""
    try:
        record = json.loads((folder / RECORD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("format", 1) == IMPORT_FORMAT else None


def imported_folder(spec: str, *, progress: ProgressFn | None = None) -> Path:
    """`import_gguf(spec).folder`: for the stages that only need the folder."""
    return import_gguf(spec, progress=progress).folder


def loadable(spec: str, *, progress: ProgressFn | None = None) -> str:
    """What `from_pretrained` should load for a base-model spec: a GGUF spec's imported folder, else the spec."""
    return str(imported_folder(spec, progress=progress)) if is_gguf_spec(spec) else spec


def _identity(path: Path, identities: Path) -> tuple[dict[str, Any], Path]:
    stat = path.stat()
    memo = identities / (hashlib.sha256(str(path).encode()).hexdigest()[:32] + ".json")
    return {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}, memo


def _known_digest(path: Path, identities: Path) -> str | None:
    """The digest remembered for this file, if its identity is unchanged since it was hashed."""
    identity, memo = _identity(path, identities)
    try:
        known = json.loads(memo.read_text(encoding="utf-8"))
        if {k: known.get(k) for k in identity} == identity and re.fullmatch(r"[0-9a-f]{64}", known.get("sha256", "")):
            return known["sha256"]
    except (OSError, ValueError, AttributeError):
        pass  # no memo yet, or a damaged one
    return None


def _file_digest(path: Path, identities: Path, progress: ProgressFn | None) -> str:
    known = _known_digest(path, identities)
    if known:
        return known
    identity, memo = _identity(path, identities)
    size = identity["size"]
    sha = hashlib.sha256()
    done = 0
    with path.open("rb") as f:
        while chunk := f.read(HASH_CHUNK):
            sha.update(chunk)
            done += len(chunk)
            report(progress, "gguf-hash", done, size, f"hashing {path.name}")
    digest = sha.hexdigest()
    from ftstudio.fsutil import atomic_write_text

    atomic_write_text(memo, json.dumps({**identity, "sha256": digest}))
    return digest


def _sweep_partials(gguf_dir: Path) -> None:
    """Remove the `.partial-…` folders of imports whose process is gone (killed mid-way)."""
    for partial in gguf_dir.glob(".partial-*"):
        try:
            pid = int(partial.name.split("-")[2])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(partial, ignore_errors=True)
        except (ValueError, IndexError, PermissionError):
            continue  # not ours to judge: a name we did not write, or another user's live process


@contextmanager
def _tensor_progress(progress: ProgressFn | None, total: int, label: str) -> Iterator[None]:
    """Turn transformers' per-tensor tqdm bar (on stderr, where no face reads it) into our events while it loads.

    transformers loops `for tensor in tqdm(reader.tensors, ...)` in its GGUF module; the name is swapped back after.
    """
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    def tensors(items: Iterable[Any], *args: Any, **kwargs: Any) -> Iterator[Any]:
        for done, item in enumerate(items, 1):
            yield item
            if done % 16 == 0 or done == total:
                report(progress, "gguf-dequantize", done, total, f"{label}: dequantized {done} of {total} tensors")

    original = gguf_utils.tqdm
    gguf_utils.tqdm = tensors
    try:
        yield
    finally:
        gguf_utils.tqdm = original


def _give_chat_template(tokenizer, info: GgufInfo, config: dict[str, Any]) -> str | None:
    """Set the tokenizer's chat template: the GGUF's own, else (a base model's GGUF, such as Gemma 3 270M's) its
    family's published one, whose turn tokens are in the family's vocabulary; where it came from, or None."""
    if info.chat_template:
        tokenizer.chat_template = info.chat_template
        return "gguf"
    family = for_config(config)
    if family is None:
        return None
    tokenizer.chat_template = family.template_text()
    return f"the {family.name} family's published template"


def _build_folder(
    source: GgufSource, info: GgufInfo, digest: str, work: Path, label: str, progress: ProgressFn | None
) -> dict[str, Any]:
    import torch
    import transformers
    from huggingface_hub import save_torch_state_dict
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # transformers picks its GGUF reader by the file name's extension; an Ollama blob has none.
    link_dir = work / ".source"
    link_dir.mkdir()
    (link_dir / "model.gguf").symlink_to(source.path)
    bf16 = set(info.tensor_types) <= {"BF16", "F32"} and "BF16" in info.tensor_types
    dtype = torch.bfloat16 if bf16 else torch.float32  # dequantized values are exact in f32, not in bf16
    report(progress, "gguf-dequantize", 0, info.tensor_count,
           f"{label}: dequantizing {info.tensor_count} tensors ({info.architecture})")  # fmt: skip
    try:
        with _tensor_progress(progress, info.tensor_count, label):
            tokenizer = AutoTokenizer.from_pretrained(link_dir, gguf_file="model.gguf")
            model = AutoModelForCausalLM.from_pretrained(link_dir, gguf_file="model.gguf", dtype=dtype)
    except FtError:
        raise  # Cancelled from the progress callback
    except Exception as exc:  # noqa: BLE001 - transformers raises many kinds for a GGUF it cannot read
        raise BadInput(
            f"{label}: transformers {transformers.__version__} could not read this GGUF: {exc}",
            hint="use the model's original Hugging Face repository or folder as the base model",
        ) from exc
    shutil.rmtree(link_dir)

    report(progress, "gguf-write", 0, None, f"{label}: writing safetensors ({str(dtype).removeprefix('torch.')})")
    config = model.config
    # transformers marks a model read from GGUF as gguf-quantized and then refuses to save it; the weights are
    # already plain tensors, so the folder must not claim otherwise.
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    config.dtype = dtype
    state = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
    if getattr(config.get_text_config(), "tie_word_embeddings", False) or config.tie_word_embeddings:
        state.pop("lm_head.weight", None)  # tied: loading re-ties it to the embedding
    save_torch_state_dict(state, work, max_shard_size="5GB", metadata={"format": "pt"})
    config.save_pretrained(work)
    if model.generation_config is not None:
        model.generation_config.save_pretrained(work)
    template_source = _give_chat_template(tokenizer, info, config.to_dict())
    tokenizer.save_pretrained(work)
    record = {
        "format": IMPORT_FORMAT, "spec": source.spec, "kind": source.kind, "source": str(source.path), "sha256": digest,
        "architecture": info.architecture, "model_type": config.model_type, "name": info.name,
        "tensor_types": info.tensor_types, "dtype": str(dtype).removeprefix("torch."),
        "chat_template": template_source, "transformers": transformers.__version__,
    }  # fmt: skip
    (work / RECORD_FILE).write_text(json.dumps(record, indent=2), encoding="utf-8")
    return record
