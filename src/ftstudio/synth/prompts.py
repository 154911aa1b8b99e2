"""Prompt templates: packaged defaults copied into the project (`prompts/*.md`) where the user can edit them.

Templates use `$name` placeholders (Python's string.Template), so JSON examples with braces need no escaping:
`$k`, `$audience`, `$style`, `$types`, `$extras`, `$form`, and `$chunk`, `$document`, `$location` (grounded) or
`$topic` (topic-only); the judge template has `$chunk`, `$question`, `$answer`. The eval set's `evalset` template has
`$k`, `$chunk`, `$document`, `$location`; `paraphrase` has `$question`; the report card's `grade` has `$passage`,
`$question`, `$reference`, `$candidate`.
"""

from __future__ import annotations

import string
from importlib.resources import files
from pathlib import Path

from ftstudio.errors import BadInput
from ftstudio.fsutil import atomic_write_text

TEMPLATES = ("generate", "topic", "judge", "evalset", "paraphrase", "grade")


def default_template(kind: str) -> str:
    return files("ftstudio.synth").joinpath("templates", f"{kind}.md").read_text(encoding="utf-8")


def template_path(project_dir: Path, kind: str) -> Path:
    return project_dir / "prompts" / f"{kind}.md"


def ensure_templates(project_dir: Path) -> dict[str, Path]:
    """Copy the default templates into the project where missing (never overwriting the user's edits)."""
    paths = {}
    for kind in TEMPLATES:
        path = template_path(project_dir, kind)
        if not path.exists():
            atomic_write_text(path, default_template(kind))
        paths[kind] = path
    return paths


def load_template(project_dir: Path, kind: str) -> string.Template:
    """The project's template of this kind (created from the default first), checked for unknown placeholders."""
    path = ensure_templates(project_dir)[kind]
    template = string.Template(path.read_text(encoding="utf-8"))
    allowed = {
        "generate": {"k", "audience", "style", "types", "extras", "form", "chunk", "document", "location"},
        "topic": {"k", "audience", "style", "types", "extras", "form", "topic"},
        "judge": {"chunk", "question", "answer"},
        "evalset": {"k", "chunk", "document", "location"},
        "paraphrase": {"question"},
        "grade": {"passage", "question", "reference", "candidate"},
    }[kind]
    if not template.is_valid():
        raise BadInput(f"{path}: a '$' that is not a placeholder", hint="write a literal dollar sign as $$")
    unknown = set(template.get_identifiers()) - allowed
    if unknown:
        raise BadInput(
            f"{path}: unknown placeholder(s) {', '.join('$' + u for u in sorted(unknown))}",
            hint=f"use only {', '.join('$' + a for a in sorted(allowed))}",
        )
    return template
