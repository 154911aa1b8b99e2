"""The user's view of `data/sft_data.jsonl`: validation, statistics, import (append or replace, with a backup) from
and export to other forms, deleting lines."""

from __future__ import annotations

import json
import shutil
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from ftstudio.dataset import (
    MAX_DEPTH,
    Example,
    LineError,
    append_records,
    decode_line,
    iter_lines,
    json_depth,
    parse_record,
    read_dataset,
    rewrite_lines,
    split_lines,
)
from ftstudio.errors import BadInput, NotFound
from ftstudio.fsutil import atomic_write_text
from ftstudio.project import Project
from ftstudio.synth import evalset, review
from ftstudio.synth.quality import DuplicateIndex, words
from ftstudio.synth.sources import open_source

FORMS = ("alpaca", "sharegpt", "openai")


def _lengths(values: list[int]) -> dict[str, float]:
    if not values:
        return {"min": 0, "median": 0, "mean": 0, "max": 0}
    return {
        "min": min(values),
        "median": statistics.median(values),
        "mean": round(statistics.fmean(values), 1),
        "max": max(values),
    }


def summarize(project: Project, duplicate_threshold: float = 0.8) -> dict[str, Any]:
    """Validate the file and describe it: counts, forms, lengths in words, duplicates, document coverage."""
    data = read_dataset(project.sft_data)
    exact = Counter(" ".join(words(e.prompt)) for e in data.examples)
    index = DuplicateIndex(duplicate_threshold)
    near = sum(not index.add_if_new(e.prompt) for e in data.examples)
    used = {int(c) for e in data.examples for c in (e.meta.get("chunk_ids") or []) if isinstance(c, int)}
    summary: dict[str, Any] = {
        "path": str(data.path),
        "examples": len(data.examples),
        "bad_lines": [{"line": e.line, "error": e.message} for e in data.errors],
        "forms": dict(Counter(e.form for e in data.examples)),
        "question_words": _lengths([len(words(e.prompt)) for e in data.examples]),
        "answer_words": _lengths([len(words(e.answer)) for e in data.examples]),
        "duplicates": {"exact": sum(n - 1 for n in exact.values() if n > 1), "near": near},
        "coverage": _coverage(project, used),
        "review": review.counts(data.examples),
        "kinds": dict(Counter(e.meta.get("kind", "pair") for e in data.examples)),
        "eval_set": _eval_set(project),
    }
    return summary


def _eval_set(project: Project) -> dict[str, Any] | None:
    frozen = evalset.load(project)
    if frozen is None:
        return None
    return {"path": str(project.eval_set), "version": frozen.version, "questions": len(frozen.items),
            "by_kind": frozen.counts()}  # fmt: skip


def _coverage(project: Project, used: set[int]) -> dict[str, Any] | None:
    with open_source(project.knowledge_db) as source:
        if source is None:
            return None
        ids = source.ids(None)
        chunks = source.get(tuple(ids))
        per_doc: dict[str, list[int]] = {}
        for c in chunks:
            per_doc.setdefault(c.document, [0, 0])
            per_doc[c.document][0] += 1
            per_doc[c.document][1] += c.id in used
        return {
            "chunks": len(ids),
            "chunks_used": len(used & set(ids)),
            "documents": [{"document": d, "chunks": n, "chunks_used": u} for d, (n, u) in sorted(per_doc.items())],
        }


def read_any(path: Path) -> tuple[list[Example], list[LineError]]:
    """Examples of a JSONL file in any accepted form, or a JSON array of such objects.

    BadInput (nothing read) for a file that is not UTF-8, naming the line and byte, or an array that is not JSON."""
    if not path.is_file():
        raise NotFound(f"no file {path}", hint="give the path of a .jsonl (or .json) file")
    with path.open("rb") as f:
        start = f.read(4096).lstrip()
    if not start.startswith(b"["):
        examples, errors = [], []
        for _, item in iter_lines(path):
            (errors if isinstance(item, LineError) else examples).append(item)
        return examples, errors
    data = path.read_bytes()
    for number, line in enumerate(split_lines(data), 1):
        decode_line(line, number, path)  # BadInput naming the first line that is not UTF-8
    if json_depth(data) > MAX_DEPTH + 1:
        raise BadInput(f"{path}: JSON nested deeper than {MAX_DEPTH} levels", hint="the accepted forms need 4")
    try:
        items = json.loads(data.decode("utf-8"))
    except ValueError as exc:
        raise BadInput(f"{path}: not valid JSON ({exc})", hint="fix the file or save it as JSONL") from exc
    if not isinstance(items, list):
        raise BadInput(f"{path}: a JSON file must hold an array of examples", hint="or save it as JSONL")
    examples, errors = [], []
    for i, obj in enumerate(items, 1):
        try:
            examples.append(parse_record(obj, i))
        except ValueError as exc:
            errors.append(LineError(i, f"item {i}: {exc}"))
    return examples, errors


def import_file(
    project: Project, path: Path, mode: Literal["append", "replace"] = "append", *, name: str | None = None
) -> dict[str, Any]:
    """Add the examples of `path` (ShareGPT, OpenAI messages or Alpaca) to the project's file, canonicalised, with
    their provenance (`meta.imported_from`: `name`, the file's name as the user knows it, else the file's own).

    "append" adds the good examples after the existing ones and reports the bad lines; "replace" puts them in place
    of the data, after a backup copy (`data/sft_data.<time>.bak.jsonl`), and is refused (nothing changed) when the
    file has a bad line or no example.
    """
    if mode not in ("append", "replace"):
        raise BadInput(f"unknown import mode {mode!r}", hint="choose append or replace")
    examples, errors = read_any(path)
    records = []
    for e in examples:
        record = e.to_canonical()
        record.setdefault("meta", {})["imported_from"] = name or path.name
        records.append(record)
    backup = None
    if mode == "replace":
        if errors or not records:
            why = "; ".join(f"line {e.line}: {e.message}" for e in errors[:10]) or "it holds no example"
            raise BadInput(f"{path.name}: not used to replace the data: {why}", hint="fix the file, then import again")
        backup = backup_data(project)
        atomic_write_text(project.sft_data, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        written = len(records)
    else:
        written = append_records(project.sft_data, records)
    return {
        "imported": written,
        "mode": mode,
        "backup": str(backup) if backup else None,
        "source": str(path),
        "bad_lines": [{"line": e.line, "error": e.message} for e in errors],
        "data": str(project.sft_data),
    }


def backup_data(project: Project) -> Path | None:
    """Copy data/sft_data.jsonl to data/sft_data.<time>.bak.jsonl (None when there is no data yet)."""
    if not project.sft_data.is_file():
        return None
    backup = project.data_dir / f"sft_data.{time.strftime('%Y%m%d-%H%M%S')}.bak.jsonl"
    n = 1
    while backup.exists():
        n += 1
        backup = project.data_dir / f"sft_data.{time.strftime('%Y%m%d-%H%M%S')}-{n}.bak.jsonl"
    shutil.copy2(project.sft_data, backup)
    return backup


def delete_lines(project: Project, lines: Sequence[int] | str) -> dict[str, Any]:
    """Delete these 1-based lines ("3,5-7" as text) of the data; every other line, its provenance included, is kept
    byte for byte. BadInput for no line or one that is not a number; NotFound for a line the file does not have."""
    if isinstance(lines, str):
        lines = review.parse_lines(lines)
    if not lines:
        raise BadInput("no line to delete", hint="give the line numbers, e.g. 3 or 3,5-7")
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in lines):
        raise BadInput(f"lines to delete must be numbers, not {list(lines)!r}", hint='e.g. [3] or "3,5-7"')
    deleted = rewrite_lines(project.sft_data, dict.fromkeys(lines))
    return {"deleted": deleted, "lines": sorted(set(lines)), "data": str(project.sft_data)}


def export_file(project: Project, path: Path, form: str) -> dict[str, Any]:
    """Write the project's examples to `path` in `form` (whole file replaced atomically). Every line left out is
    listed in `skipped` (its number and why): bad lines, and multi-turn examples, which have no Alpaca form."""
    if form not in FORMS:
        raise BadInput(f"unknown export form {form!r}", hint=f"use one of {', '.join(FORMS)}")
    data = read_dataset(project.sft_data)
    skipped = [{"line": e.line, "error": e.message} for e in data.errors]
    lines = []
    for e in data.examples:
        if form == "sharegpt":
            record = e.to_sharegpt()
        elif form == "openai":
            record = e.to_openai()
        else:
            record = e.to_canonical()
            record.pop("meta", None)
            if "messages" in record:
                skipped.append({"line": e.line, "error": "a multi-turn conversation has no Alpaca form"})
                continue
        lines.append(json.dumps(record, ensure_ascii=False))
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    skipped.sort(key=lambda s: s["line"])
    return {"exported": len(lines), "to": form, "path": str(path), "skipped": skipped}
