"""Loaders, one module per format, chosen by file extension: each turns a file's bytes into a `LoadedDocument`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ftstudio.knowledge.document import LoadedDocument
from ftstudio.knowledge.loaders import docx, epub, html, markdown, pdf, text
from ftstudio.knowledge.loaders.errors import LoadError

Loader = Callable[[Path, bytes], LoadedDocument]

LOADERS: dict[str, Loader] = {
    ".pdf": pdf.load,
    ".docx": docx.load,
    ".epub": epub.load,
    ".html": html.load,
    ".htm": html.load,
    ".xhtml": html.load,
    ".md": markdown.load,
    ".markdown": markdown.load,
    ".txt": text.load,
    ".text": text.load,
}


def is_supported(path: Path) -> bool:
    return path.suffix.lower() in LOADERS


def load_document(path: Path, data: bytes) -> LoadedDocument:
    """Read `data` (the bytes of `path`) with the loader for its extension.

    Raises LoadError naming the file and the reason: unsupported extension, empty file, or the loader's own.
    """
    loader = LOADERS.get(path.suffix.lower())
    if loader is None:
        kinds = ", ".join(sorted(LOADERS))
        raise LoadError(path, f"unsupported file type {path.suffix or '(no extension)'!r}", f"supported: {kinds}")
    if not data:
        raise LoadError(path, "empty file (0 bytes)", "check that the file was copied completely")
    return loader(path, data)


__all__ = ["LOADERS", "LoadError", "is_supported", "load_document"]
