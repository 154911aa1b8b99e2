"""The workspace: `<root>/projects/<name>/` and its typed settings in `project.toml`.

Layout (a contract, see DESIGN.md):

    projects/<name>/
      project.toml          settings, never secrets
      knowledge.db          documents, chunks, full-text index
      data/sft_data.jsonl   the training data
      data/eval_set.jsonl   the frozen evaluation questions (never trained on)
      runs/<run-id>/        one training run
      exports/              adapters, merged models, GGUF files, Modelfiles
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import tomli_w

from ftstudio.errors import BadInput, NotFound
from ftstudio.fsutil import atomic_write_text

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

if TYPE_CHECKING:
    from ftstudio.settings import ProjectSettings

__all__ = ["Project", "list_projects", "resolve_root", "validate_name"]

ROOT_ENV = "FTSTUDIO_ROOT"
# Not starting with '-' either: a name is passed on command lines (jobs, the commands the UI shows) and must never
# read as an option.
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$")


def resolve_root(root: Path | str | None = None) -> Path:
    """The workspace root: `root` if given, else $FTSTUDIO_ROOT, else the current directory."""
    chosen = root or os.environ.get(ROOT_ENV) or Path.cwd()
    return Path(chosen).expanduser().resolve()


def validate_name(name: str) -> str:
    """Return `name` if it is a safe single path component, else raise BadInput."""
    if not _NAME_RE.match(name) or name in {".", ".."}:
        raise BadInput(
            f"{name!r} is not a valid project name",
            hint="use 1-64 letters, digits, '-', '_' or '.', not starting with '.' or '-' (e.g. math-tutor)",
        )
    return name


@dataclass(frozen=True)
class Project:
    """One project folder. Construct with `Project.create` or `Project.open`.

    The settings models (pydantic) load in the methods that read or write project.toml:
    opening a project and finding its files is what the listings (`ftstudio docs`, `search`, `projects`) need, and
    they start faster without them.
    """

    root: Path
    name: str

    @property
    def dir(self) -> Path:
        return self.root / "projects" / self.name

    @property
    def settings_path(self) -> Path:
        return self.dir / "project.toml"

    @property
    def knowledge_db(self) -> Path:
        return self.dir / "knowledge.db"

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def sft_data(self) -> Path:
        return self.data_dir / "sft_data.jsonl"

    @property
    def eval_set(self) -> Path:
        return self.data_dir / "eval_set.jsonl"

    @property
    def runs_dir(self) -> Path:
        return self.dir / "runs"

    @property
    def exports_dir(self) -> Path:
        return self.dir / "exports"

    @classmethod
    def create(cls, name: str, root: Path | str | None = None) -> Project:
        """Create a new project with default settings; BadInput if it exists or the name is unsafe."""
        project = cls(resolve_root(root), validate_name(name))
        if project.settings_path.exists():
            raise BadInput(
                f"project {name!r} already exists at {project.dir}",
                hint="pick another name, or use the existing project",
            )
        from ftstudio.settings import ProjectSettings

        for folder in (project.data_dir, project.runs_dir, project.exports_dir):
            folder.mkdir(parents=True, exist_ok=True)
        project.save_settings(ProjectSettings())
        return project

    @classmethod
    def open(cls, name: str, root: Path | str | None = None) -> Project:
        """Open an existing project; NotFound (with the fix) if there is none of that name."""
        root = resolve_root(root)
        folder = root / "projects" / name
        if name.startswith("-") and _NAME_RE.match(name.lstrip("-")) and (folder / "project.toml").is_file():
            # Made before names starting with '-' were refused: say how to rename it.
            raise BadInput(
                f"project {name!r} has a name starting with '-', which commands would read as an option",
                hint=f"rename its folder, e.g. `mv -- {shlex.quote(str(folder))} "
                f"{shlex.quote(str(folder.with_name(name.lstrip('-'))))}`, then use the new name",
            )
        project = cls(root, validate_name(name))
        if not project.settings_path.is_file():
            raise NotFound(
                f"no project {name!r} under {project.root / 'projects'}",
                hint=f"create it with `ftstudio init {name}`, or pass --root (or set {ROOT_ENV}) to its workspace",
            )
        return project

    def settings(self) -> ProjectSettings:
        """Read and validate project.toml, reporting every problem at once."""
        from pydantic import ValidationError

        from ftstudio.settings import ProjectSettings, settings_errors

        try:
            raw = tomllib.loads(self.settings_path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise BadInput(f"{self.settings_path}: not valid TOML: {exc}", hint="fix or delete the file") from exc
        try:
            return ProjectSettings.model_validate(raw)
        except ValidationError as exc:
            raise BadInput(
                settings_errors(exc, str(self.settings_path)), hint="fix these settings in project.toml"
            ) from exc

    def save_settings(self, settings: ProjectSettings) -> None:
        """Write project.toml atomically; unset (None) values are left out."""
        data = settings.model_dump(mode="json", exclude_none=True)
        atomic_write_text(self.settings_path, tomli_w.dumps(data))

    def update_settings(self, section: str, **values: object) -> ProjectSettings:
        """Change some values of one table, validate the whole, save, and return the new settings."""
        from pydantic import ValidationError

        from ftstudio.settings import ProjectSettings, settings_errors

        current = self.settings().model_dump()
        current[section] = {**current[section], **values}
        try:
            updated = ProjectSettings.model_validate(current)
        except ValidationError as exc:
            raise BadInput(settings_errors(exc, "settings"), hint="nothing was saved; correct the values") from exc
        self.save_settings(updated)
        return updated


def list_projects(root: Path | str | None = None) -> list[str]:
    """Names of the projects under the workspace root, sorted."""
    base = resolve_root(root) / "projects"
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if (p / "project.toml").is_file() and _NAME_RE.match(p.name))
