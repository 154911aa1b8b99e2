"""Progress events: how long work in the core reports to the faces without printing.

A core function that takes a while accepts `progress: ProgressFn | None` and calls it with `Event`s. The CLI turns
them into a progress bar, the UI into live components, and a background job into lines of its log: the line format
(`{"event": {...}}`, `event_line` and `parse_event_line`) is defined here only, for the CLI that writes it and the
job runner that reads it.
Returning normally from the callback continues; the callback may raise `Cancelled` to stop the work.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    """One step of progress: `done` of `total` units (`total` None when unknown), with optional detail."""

    stage: str
    done: float = 0
    total: float | None = None
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


ProgressFn = Callable[[Event], None]


def report(
    progress: ProgressFn | None, stage: str, done: float = 0, total: float | None = None, message: str = "", **data: Any
) -> None:
    """Send one event if anyone is listening."""
    if progress is not None:
        progress(Event(stage, done, total, message, data))


def event_line(event: Event) -> str:
    """One event as one log line (no newline)."""
    return json.dumps({"event": event.to_dict()}, default=str)


def parse_event_line(line: str) -> Event | None:
    """The event of a line written by `event_line`, or None for any other line."""
    if not line.startswith('{"event"'):
        return None
    try:
        return Event(**json.loads(line)["event"])
    except (ValueError, TypeError, KeyError):
        return None
