"""ftstudio: turn your own documents into a fine-tuned language model on your own machine.

The pipeline, one subpackage per stage in the order data flows:
knowledge (documents → chunks) → basemodels (what to train) → synth (chunks → SFT pairs)
→ train (LoRA/QLoRA) → export (adapter, merged, GGUF, Ollama). The CLI and the studio are thin faces over it.

The Python API (docs/api.md): open or create a `Project`, then call the steps with a request or keyword values::

    import ftstudio
    project = ftstudio.example_project("/tmp/ws")
    ftstudio.train(project, max_steps=4)

Importing ftstudio is light: each name of the API loads its module on first use (PEP 562), so the `ftstudio`
command, which imports this package first, answers a listing before pydantic and the settings models load (issue
22); torch, transformers and gradio load inside the steps that need them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ftstudio.errors import BadInput, Cancelled, FtError, NotFound, PartlyDone, Unavailable
from ftstudio.progress import Event

if TYPE_CHECKING:  # what the names below are, for type checkers and editors
    from ftstudio.api import (
        ChatResult,
        DataDeleteResult,
        DataEditResult,
        DataImportResult,
        DataReviewResult,
        EvaluateResult,
        GenerateResult,
        chat,
        check_model,
        delete_data,
        edit_data,
        evaluate,
        export,
        generate,
        import_data,
        ingest,
        make_eval_set,
        report_card,
        review_data,
        search,
        train,
    )
    from ftstudio.example import ensure_example as example_project
    from ftstudio.project import Project
    from ftstudio.requests import (
        ChatRequest,
        CheckRequest,
        EvalSetRequest,
        EvaluateRequest,
        ExportRequest,
        GenerateRequest,
        IngestRequest,
        SearchRequest,
        TrainRequest,
    )
    from ftstudio.settings import ProjectSettings

__version__ = "0.1.0"

__all__ = [
    "Project", "ProjectSettings", "example_project",
    "ingest", "search", "check_model", "generate", "train", "evaluate", "make_eval_set",
    "report_card", "export", "chat", "import_data", "edit_data", "review_data",
    "delete_data",
    "IngestRequest", "SearchRequest", "CheckRequest", "GenerateRequest", "TrainRequest", "EvalSetRequest",
    "EvaluateRequest", "ExportRequest", "ChatRequest",
    "GenerateResult", "EvaluateResult", "ChatResult", "DataImportResult", "DataEditResult",
    "DataReviewResult", "DataDeleteResult",
    "Event",
    "FtError", "BadInput", "NotFound", "Unavailable", "PartlyDone", "Cancelled",
]  # fmt: skip

# Where each lazily loaded name lives, and its name there; every other name of __all__ is in ftstudio.api.
_ELSEWHERE = {
    "Project": ("ftstudio.project", "Project"),
    "ProjectSettings": ("ftstudio.settings", "ProjectSettings"),
    "example_project": ("ftstudio.example", "ensure_example"),
    **{n: ("ftstudio.requests", n) for n in __all__ if n.endswith("Request")},
}

# `train` and `export` are API functions and also stage subpackages. The first import of a subpackage sets it as an
# attribute of this package, which would hide the function from __getattr__ for good; so both (their __init__ is a
# docstring) are imported here, before anything else can, and their attributes dropped.
for _stage in ("train", "export"):
    importlib.import_module(f"ftstudio.{_stage}")
    del globals()[_stage]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'ftstudio' has no attribute {name!r}")
    module, attr = _ELSEWHERE.get(name, ("ftstudio.api", name))
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
