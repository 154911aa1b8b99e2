"""Small file-system helpers shared by every stage: atomic writes, so a crash never leaves half a file, and names
that sort by the time they were made."""

from __future__ import annotations

import os
import secrets
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

_last_ms = 0
_last_lock = threading.Lock()


def time_sorted_name(*parts: str) -> str:
    """A fresh name that sorts after every earlier one: `20261204-213000-123-<parts>-a1b2` (UTC, milliseconds).

    A job that fails at once and the one started right after share a second, and a random tail alone would order
    them by chance (the studio then showed the older job as the newest); names made in the same millisecond get
    the next one, so within a process the order is exact."""
    global _last_ms
    with _last_lock:
        _last_ms = max(time.time_ns() // 1_000_000, _last_ms + 1)
        ms = _last_ms
    stamp = datetime.fromtimestamp(ms // 1000, timezone.utc).strftime("%Y%m%d-%H%M%S")
    return "-".join((stamp, f"{ms % 1000:03d}", *parts, secrets.token_hex(2)))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see either the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
