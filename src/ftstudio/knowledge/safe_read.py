"""Reading untrusted files with limits that hold against hostile input.

- Only regular files are read, opened without blocking: a named pipe, socket, device or /proc-like file fails by
  name at once instead of hanging or streaming forever.
- Every read has a size cap counted on the bytes actually read, never on what a header or `stat` claims.
- A zip member (EPUB and DOCX parts) is read through `BoundedZip`, which stops at the cap on the bytes it has
  actually unpacked and on the compression ratio, so a zip bomb or a header that understates a member's size costs
  a bounded amount of memory.

Ingest sets the limits of its run from the project's `[knowledge]` settings (`use_limits`); the archive loaders
read them with `current_limits()`, so every loader keeps its `(path, bytes)` signature.
"""

from __future__ import annotations

import os
import stat
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

from ftstudio.knowledge.loaders.errors import LoadError

MB = 1024 * 1024
_CHUNK = MB
_CAP_HINT = "raise knowledge.max_document_mb in project.toml if the file is genuine (docs/security.md)"


@dataclass(frozen=True)
class ReadLimits:
    """`max_bytes`: most bytes read from one file, and most bytes unpacked from one archive, all members together.
    `max_ratio`: most unpacked bytes per compressed byte of a zip member, once it has unpacked `ratio_floor` bytes
    (small parts such as styles are often very repetitive; a bomb is large and far more so)."""

    max_bytes: int = 512 * MB
    max_ratio: float = 100.0
    ratio_floor: int = 4 * MB


_limits: ContextVar[ReadLimits | None] = ContextVar("ftstudio_read_limits", default=None)


def current_limits() -> ReadLimits:
    return _limits.get() or ReadLimits()


@contextmanager
def use_limits(limits: ReadLimits) -> Iterator[ReadLimits]:
    """Apply `limits` to every read in this context (this thread or task only)."""
    token = _limits.set(limits)
    try:
        yield limits
    finally:
        _limits.reset(token)


def _mb(n: float) -> str:
    return f"{n / MB:g} MB"


def not_regular(mode: int) -> str | None:
    """What a non-regular file is ("a named pipe (FIFO)", …), or None for a regular file."""
    kinds = (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    )
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def read_regular(path: Path, max_bytes: int, shown: str | None = None) -> tuple[bytes, os.stat_result]:
    """The bytes of the regular file `path` (at most `max_bytes`) and its stat; LoadError naming `shown` (the path
    as the user gave it, default `path`) when it is not a regular file, is larger, or changes while it is read."""
    name = shown or str(path)
    try:
        # O_NONBLOCK: opening a FIFO that has no writer would otherwise wait forever.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        try:
            kind = not_regular(os.stat(path).st_mode)
        except OSError:
            kind = None
        reason = f"{kind}, not a regular file" if kind else f"unreadable ({exc.strerror or exc})"
        raise LoadError(name, reason, "only regular files are read") from None
    with os.fdopen(fd, "rb", buffering=0) as f:
        info = os.fstat(f.fileno())  # of what was opened: a file swapped after a check cannot slip through
        kind = not_regular(info.st_mode)
        if kind is not None:
            raise LoadError(name, f"{kind}, not a regular file", "only regular files are read")
        if info.st_size > max_bytes:
            raise LoadError(name, f"{_mb(info.st_size)}, larger than the cap of {_mb(max_bytes)}", _CAP_HINT)
        data = f.read(info.st_size) if info.st_size else b""
        more = f.read(1)
    if more and not info.st_size:
        raise LoadError(name, "reports a size of 0 but has content (a /proc-like file)", "only regular files are read")
    if more or len(data) != info.st_size:
        raise LoadError(name, "changed while it was read", "try again once the file is complete")
    return data, info


class BoundedZip:
    """A zip archive (in memory) whose members are read within the limits: LoadError once a member, or the archive
    so far, unpacks to more than `max_bytes`, or a member's unpacked bytes exceed `max_ratio` times its compressed
    size. What counts is what the decompressor actually produced, never the sizes the headers claim.

    A member is first unpacked and thrown away, a megabyte at a time, to measure it; only a member within the limits
    is then unpacked again into memory. So a bomb costs time (bounded by the caps) but never memory.
    """

    def __init__(self, path: Path, archive: zipfile.ZipFile, limits: ReadLimits | None = None):
        self.path = path
        self.zip = archive
        self.limits = limits or current_limits()
        self.unpacked = 0  # by every member measured so far: the cap holds for the archive as a whole

    def namelist(self) -> list[str]:
        return self.zip.namelist()

    def read(self, name: str) -> bytes:
        """The member's bytes (KeyError if there is no such member, like ZipFile.read)."""
        size = self._measure(self.zip.getinfo(name))
        with self.zip.open(name) as member:
            return member.read(size)  # at most `size` bytes are unpacked into memory

    def check_all(self) -> None:
        """Measure every member, keeping nothing: for a reader (python-docx) that reads the members itself after."""
        for info in self.zip.infolist():
            if not info.is_dir():
                self._measure(info)

    def _measure(self, info: zipfile.ZipInfo) -> int:
        name, limits = info.filename, self.limits
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            # EPUB and DOCX allow only these; bzip2 and LZMA would also unpack without a bound per read.
            method = info.compress_type
            raise LoadError(self.path, f"{name} uses zip compression method {method}, not stored or deflate")
        produced = 0
        with self.zip.open(info) as member:
            while piece := member.read(_CHUNK):
                produced += len(piece)
                if self.unpacked + produced > limits.max_bytes:
                    raise LoadError(
                        self.path,
                        f"unpacks to more than the cap of {_mb(limits.max_bytes)} (stopped in {name})",
                        _CAP_HINT,
                    )
                if produced > limits.ratio_floor and produced > limits.max_ratio * max(info.compress_size, 1):
                    raise LoadError(
                        self.path,
                        f"{name} unpacks to more than {limits.max_ratio:g} times its compressed size "
                        f"({info.compress_size} bytes): a zip bomb",
                        "if the file is genuine, raise knowledge.max_unpack_ratio in project.toml (docs/security.md)",
                    )
        self.unpacked += produced
        return produced
