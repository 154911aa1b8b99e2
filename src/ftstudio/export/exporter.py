"""`export`: one call from a project's training run to files in `exports/` (and, if asked, a model in Ollama).

Formats: `adapter` (the PEFT adapter as trained), `merged` (adapter merged into the base, safetensors) and `gguf`
(merged into a temporary folder, written as GGUF, K-quantized by llama.cpp when asked, verified in llama.cpp against
transformers, with an Ollama Modelfile beside it). Every check that can fail early (quant type, architecture,
llama-cpp-python, disk space) runs before anything is written.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ftstudio.errors import BadInput, PartlyDone, Unavailable
from ftstudio.export import merged as merging
from ftstudio.export.files import check_disk, staged_dir, staged_file
from ftstudio.export.runs import Run, find_run, resolve_base
from ftstudio.export.settings import K_QUANTS, ExportSettings
from ftstudio.fsutil import atomic_write_text
from ftstudio.progress import ProgressFn, report
from ftstudio.project import Project

FORMATS = ("adapter", "merged", "gguf")


class VerificationFailed(PartlyDone):
    """The GGUF was written but llama.cpp does not behave like the merged model."""


@dataclass(frozen=True)
class ExportResult:
    project: str
    run: str
    format: str
    quant: str | None
    files: list[dict[str, Any]] = field(default_factory=list)
    verification: dict[str, Any] | None = None
    ollama: dict[str, Any] | None = None
    ollama_command: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def export(
    project: Project,
    *,
    fmt: str | None = None,
    run_id: str | None = None,
    quant: str | None = None,
    to_ollama: str | None = None,
    verify: bool | None = None,
    settings: ExportSettings | None = None,
    progress: ProgressFn | None = None,
) -> ExportResult:
    """Export a run of `project` (the latest completed one unless `run_id`); see the module docstring."""
    from ftstudio.export.gguf import quantize

    project_settings = project.settings()
    settings = settings or project_settings.export
    fmt = fmt or settings.format
    if fmt not in FORMATS:
        raise BadInput(f"unknown format {fmt!r}", hint="use --format adapter, merged or gguf")
    quant = quantize.check_quant(quant or settings.quant) if fmt == "gguf" else None
    run = find_run(project, run_id)
    system = run.system_prompt if run.system_prompt is not None else project_settings.train.system_prompt
    stem = f"{project.name}-{run.id}"
    out = project.exports_dir
    result = ExportResult(project.name, run.id, fmt, quant)

    if fmt == "adapter":
        dest = out / f"{stem}-adapter"
        check_disk(out, _folder_size(run.adapter_dir), "the adapter")
        with staged_dir(dest) as work:
            merging.copy_side_files(run.adapter_dir, work)
            shutil.copy2(run.adapter_dir / "adapter_model.safetensors", work / "adapter_model.safetensors")
            shutil.copy2(run.adapter_dir / "adapter_config.json", work / "adapter_config.json")
        result = replace(result, files=_describe(sorted(dest.iterdir())))
        return result

    base = resolve_base(run.base_model)
    if fmt == "merged":
        check_disk(out, merging.weights_size(base), "the merged model")
        files = merging.export_merged(
            base,
            run.adapter_dir,
            out / f"{stem}-merged",
            max_shard_bytes=settings.max_shard_mb << 20,
            progress=progress,
        )
        result = replace(result, files=_describe(files))
        return result

    return _export_gguf(project, run, base, quant, stem, system, to_ollama, verify, settings, result, progress)


def _export_gguf(
    project: Project,
    run: Run,
    base: Path,
    quant: str,
    stem: str,
    system: str | None,
    to_ollama: str | None,
    verify: bool | None,
    settings: ExportSettings,
    result: ExportResult,
    progress: ProgressFn | None,
) -> ExportResult:
    from ftstudio.export import modelfile as mf
    from ftstudio.export import ollama
    from ftstudio.export.chat import ChatFormat
    from ftstudio.export.gguf import arch, quantize
    from ftstudio.export.gguf.writer import export_gguf

    arch.family_for(json.loads((base / "config.json").read_text(encoding="utf-8")))
    ChatFormat.from_folder(base).end_of_turn()  # the template must render, before any work
    quantize.require_llama_cpp(quant)
    verify = settings.verify if verify is None else verify
    if verify is None:
        verify = quantize.llama_cpp_available()
    elif verify and not quantize.llama_cpp_available():
        raise Unavailable(
            "--verify needs llama-cpp-python, which is not installed",
            hint=f"install it with: {quantize.INSTALL_LLAMA_CPP}; or pass --no-verify",
        )
    out = project.exports_dir
    params = merging.count_params(base)
    weights = merging.weights_size(base)
    needed = weights + int(params * quantize.BITS[quant] / 8) + (params * 2 if quant in K_QUANTS else 0)
    check_disk(out, needed, f"the {quant} GGUF (with its temporary merged model)")

    dest = out / f"{stem}-{quant}.gguf"
    with tempfile.TemporaryDirectory(dir=out, prefix=f".{stem}.") as tmp:
        merged_dir = Path(tmp) / "merged"
        report(progress, "merge", 0, None, "merging the adapter")
        merging.export_merged(base, run.adapter_dir, merged_dir, progress=progress)
        if quant in K_QUANTS:
            source_type = "f32" if _dtype(merged_dir) == "float32" else "f16"
            intermediate = Path(tmp) / f"model-{source_type}.gguf"
            export_gguf(merged_dir, intermediate, source_type, name=stem, progress=progress)
            report(progress, "quantize", 0, None, f"llama.cpp quantizing to {quant}")
            with staged_file(dest) as staged:
                quantize.quantize_k(intermediate, staged, quant)
        else:
            export_gguf(merged_dir, dest, quant, name=stem, progress=progress)

        chat = ChatFormat.from_folder(merged_dir)
        ollama_chat = mf.ollama_chat(chat, mf.eos_texts(merged_dir))
        modelfile_path = out / f"{stem}-{quant}.Modelfile"
        atomic_write_text(modelfile_path, mf.modelfile(dest.name, ollama_chat, system))
        result = replace(result, files=_describe([dest, modelfile_path]))
        model_name = to_ollama or stem.lower()
        command = f"cd {out} && " + ollama.create_command(model_name, modelfile_path)
        result = replace(result, ollama_command=command)

        if verify:
            from ftstudio.export.verify import held_out_prompts, verify_gguf

            conversations = held_out_prompts(project.sft_data, settings.verify_prompts, system)
            check = verify_gguf(
                dest, merged_dir, quant, conversations, max_tokens=settings.verify_tokens, progress=progress
            )
            result = replace(result, verification=check.to_dict())
            if not check.passed:
                raise VerificationFailed(
                    f"{dest.name} failed verification in llama.cpp: " + "; ".join(check.problems),
                    hint="the file is kept for inspection; report this with the model's name, or try --quant f16",
                )
    if to_ollama:
        installed = ollama.install(dest, to_ollama, ollama_chat, system, modelfile_path, progress=progress)
        result = replace(result, ollama=installed)
    return result


def _dtype(folder: Path) -> str:
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    return str(config.get("dtype") or config.get("torch_dtype") or "float32")


def _folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _describe(files: list[Path]) -> list[dict[str, Any]]:
    return [{"path": str(p), "size": p.stat().st_size} for p in files if p.is_file()]
