"""Saving the project's base model: checked first, so a choice that cannot work here is refused before it is saved."""

from __future__ import annotations

from ftstudio.basemodels.checks import CheckResult, check_model
from ftstudio.progress import ProgressFn
from ftstudio.project import Project


def use_model(
    project: Project,
    spec: str,
    *,
    force: bool = False,
    trust_remote_code: bool = False,
    seq_len: int = 2048,
    batch: int = 1,
    method: str = "lora",
    lora_rank: int = 16,
    progress: ProgressFn | None = None,
) -> CheckResult:
    """Check `spec` and save it as `[base_model] model` (a folder or a .gguf file as its absolute path, an ollama:
    name as given; a GGUF is imported first, reporting to `progress`); return the check.

    The plan (`seq_len`, `batch`, `method`, `lora_rank`) is `CheckRequest.plan(project)` on every face.

    An error verdict raises (exit 2, or 3 when only this machine lacks something) and saves nothing, unless `force`.
    """
    result = check_model(spec, trust_remote_code=trust_remote_code, seq_len=seq_len, batch=batch, method=method,
                         lora_rank=lora_rank, progress=progress)  # fmt: skip
    if not force:
        result.raise_for_error("not saved", "or pass --force to save it anyway")
    saved = result.model if result.info.get("source") in ("folder", "gguf") else spec
    project.update_settings("base_model", model=saved, trust_remote_code=trust_remote_code)
    return result
