"""One exception family for the whole library.

Every message names the thing, the value and the fix. The exit code follows DESIGN.md: 2 bad usage or bad
input (nothing changed), 3 a needed service or resource is unavailable, 1 partly done. A failure as the CLI prints
it with --json (and a background job leaves it) is `error_document`; `error_message` reads it back.
"""

from __future__ import annotations

from typing import Any


class FtError(Exception):
    """Base of every error ftstudio raises on purpose; `exit_code` is what the CLI exits with."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  → {self.hint}" if self.hint else self.message


class BadInput(FtError):
    """The user's input (a name, a file, a setting) is wrong; nothing was changed."""

    exit_code = 2


class NotFound(BadInput):
    """A project, document, run or file the user named does not exist."""


class Unavailable(FtError):
    """A service or resource the step needs is missing: Ollama, an API key, CUDA, disk space."""

    exit_code = 3


class PartlyDone(FtError):
    """Some inputs failed and were named; the rest were kept."""

    exit_code = 1


class Cancelled(FtError):
    """The user stopped the work (Ctrl-C or the UI's stop); what was finished is kept."""

    exit_code = 130


def error_document(exc: FtError) -> dict[str, Any]:
    """The one JSON form of a failure: {"error", "hint", "exit_code"}."""
    return {"error": exc.message, "hint": exc.hint, "exit_code": exc.exit_code}


def error_message(doc: Any) -> str | None:
    """The message (with its hint) of a document made by `error_document`, or None for any other document."""
    if not (isinstance(doc, dict) and "error" in doc and "exit_code" in doc):
        return None
    return str(doc["error"]) + (f"\n  → {doc['hint']}" if doc.get("hint") else "")
