"""Writing export outputs so that a crash, a Ctrl-C or a full disk never leaves a partial file behind."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ftstudio.errors import Unavailable


@contextmanager
def staged_dir(dest: Path) -> Iterator[Path]:
    """A temporary folder beside `dest` that replaces `dest` when the block succeeds and vanishes when it fails."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp"))
    try:
        yield work
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(work, dest)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


@contextmanager
def staged_file(dest: Path) -> Iterator[Path]:
    """A temporary path beside `dest`, renamed to `dest` when the block succeeds and deleted when it fails."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def check_disk(folder: Path, needed: int, what: str) -> None:
    """Raise Unavailable before writing when `folder`'s disk has less than `needed` bytes (plus 5%) free."""
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < needed * 1.05:
        raise Unavailable(
            f"not enough disk space for {what}: about {needed / 2**20:,.0f} MiB needed, "
            f"{free / 2**20:,.0f} MiB free on the disk of {folder}",
            hint="free some space (old exports, checkpoints) or move the workspace with --root",
        )


ARCHIVES = ".archives"  # beside the exports, hidden: a download copy, not an export of its own


def downloads(exports: Path) -> list[Path]:
    """What to download from `exports/`: each file itself, each export folder as one .zip (`folder_archive`).
    Archives whose folder is gone are deleted, so `exports/.archives/` holds one zip per export folder at most."""
    if not exports.is_dir():
        return []
    entries = sorted(e for e in exports.iterdir() if not e.name.startswith("."))
    folders = {e.name for e in entries if e.is_dir()}
    for stale in (exports / ARCHIVES).glob("*.zip"):
        if stale.stem not in folders:
            stale.unlink(missing_ok=True)
    return [folder_archive(e) if e.is_dir() else e for e in entries]


def folder_archive(folder: Path) -> Path:
    """One .zip of an export folder (a merged model, an adapter), for a single download: kept in
    `exports/.archives/<folder>.zip` and made again only when a file of the folder is newer. Stored, not compressed:
    safetensors do not shrink, and storing is as fast as copying. Written whole or not at all."""
    import zipfile

    archive = folder.parent / ARCHIVES / f"{folder.name}.zip"
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    newest = max((p.stat().st_mtime for p in files), default=0.0)
    if archive.is_file() and archive.stat().st_mtime >= newest:
        return archive
    with staged_file(archive) as staged, zipfile.ZipFile(staged, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for path in files:
            zf.write(path, f"{folder.name}/{path.relative_to(folder)}")
    return archive
