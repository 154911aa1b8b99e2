"""ftstudio: turn your own documents into a fine-tuned language model on your own machine.

The pipeline, one subpackage per stage in the order data flows:
knowledge (documents → chunks) → basemodels (what to train) → synth (chunks → SFT pairs)
→ train (LoRA/QLoRA) → export (adapter, merged, GGUF, Ollama). The CLI and the studio are thin faces over it.

The Python API (docs/api.md): open or create a `Project`, then call the steps with a request or keyword values::

    import ftstudio
    project = ftstudio.example_project("/tmp/ws")
    ftstudio.train(project, max_steps=4)

Importing ftstudio is light: torch, transformers and gradio load inside the steps that need them.
"""

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
from ftstudio.errors import BadInput, Cancelled, FtError, NotFound, PartlyDone, Unavailable
from ftstudio.example import ensure_example as example_project
from ftstudio.progress import Event
from ftstudio.project import Project, ProjectSettings
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
