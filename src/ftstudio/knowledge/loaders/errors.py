"""The one error every loader raises: it names the file, the reason, and what to do."""

from __future__ import annotations

from pathlib import Path

from ftstudio.errors import BadInput


class LoadError(BadInput):
    """A file that cannot be read as the document it claims to be."""

    def __init__(self, path: Path | str, reason: str, hint: str | None = None):
        super().__init__(f"{path}: {reason}", hint=hint)
        self.path = str(path)
        self.reason = reason
