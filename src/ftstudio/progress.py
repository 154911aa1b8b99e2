"""Progress events: how long work in the core reports to the faces without printing.

A core function that takes a while accepts `progress: ProgressFn | None` and calls it with `Event`s. The CLI turns
them into a progress bar, the UI into live components, and a background job into lines of a JSONL log.
Returning normally from the callback continues; the callback may raise `Cancelled` to stop the work.
"""

from __future__ import annotations

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
