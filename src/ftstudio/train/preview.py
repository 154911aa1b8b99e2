"""What training will see: one example rendered with the base model's template, its trained tokens marked."""

from __future__ import annotations

from dataclasses import dataclass

from ftstudio.dataset import read_dataset
from ftstudio.errors import BadInput
from ftstudio.project import Project
from ftstudio.train.formatting import Formatter
from ftstudio.train.settings import TrainSettings


@dataclass(frozen=True)
class MaskPreview:
    line: int
    segments: list[tuple[str, bool]]  # (text, trained)
    tokens: int
    trained_tokens: int
    truncated: bool

    def to_dict(self) -> dict:
        return {
            "line": self.line,
            "tokens": self.tokens,
            "trained_tokens": self.trained_tokens,
            "truncated": self.truncated,
            "segments": [{"text": text, "trained": trained} for text, trained in self.segments],
        }


def mask_preview(project: Project, settings: TrainSettings, base_model: str, line: int | None = None) -> MaskPreview:
    """Render the example on data line `line` (the first example when None) as training will; only the
    tokenizer is loaded."""
    from ftstudio.basemodels.gguf_import import loadable
    from ftstudio.train.backends.hf import load_tokenizer
    from ftstudio.train.formatting import end_of_turn_ids

    dataset = read_dataset(project.sft_data)
    candidates = [e for e in dataset.examples if line is None or e.line == line]
    if not candidates:
        where = f"on line {line} " if line is not None else ""
        raise BadInput(
            f"no valid example {where}in {project.sft_data}", hint="pick a line that `ftstudio data` accepts"
        )
    base_model = loadable(base_model)  # a GGUF spec: its imported folder
    tokenizer = load_tokenizer(base_model, trust_remote_code=project.settings().base_model.trust_remote_code)
    formatter = Formatter.create(tokenizer, settings.system_prompt, end_of_turn_ids(base_model, tokenizer))
    encoded = formatter.encode(candidates[0], settings.max_seq_length)
    return MaskPreview(
        candidates[0].line, formatter.mask_segments(encoded), len(encoded), encoded.trained_tokens, encoded.truncated
    )
