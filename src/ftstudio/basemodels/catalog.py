"""The curated catalog of base models (`catalog.toml`, package data): facts to judge a model before downloading it."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class CatalogEntry:
    """One curated model; see the header of catalog.toml for what each field means."""

    id: str
    name: str
    params: float  # billions, as published
    context: int
    license: str
    architecture: str
    chat_template: str
    bnb_4bit: bool
    shape: dict[str, Any] = field(hash=False)
    full_precision: str | None = None
    gated: bool = False
    config_from: str | None = None


@lru_cache(maxsize=1)
def load_catalog() -> tuple[CatalogEntry, ...]:
    """Every catalog entry, in file order."""
    text = resources.files("ftstudio.basemodels").joinpath("catalog.toml").read_text(encoding="utf-8")
    return tuple(CatalogEntry(**raw) for raw in tomllib.loads(text)["model"])


def find_entry(model_id: str) -> CatalogEntry | None:
    """The entry for a hub id (case-insensitive, as the hub treats ids), or None."""
    wanted = model_id.strip().lower()
    return next((e for e in load_catalog() if e.id.lower() == wanted), None)


def full_precision_sibling(model_id: str) -> str | None:
    """For a pre-quantized 4-bit repository, the 16-bit one with the same weights: from the catalog, else by name."""
    entry = find_entry(model_id)
    if entry is not None and entry.full_precision:
        return entry.full_precision
    lowered = model_id.lower()
    for suffix in ("-bnb-4bit", "-unsloth-bnb-4bit", "-4bit"):
        if lowered.endswith(suffix) and "/" in model_id:
            return model_id[: -len(suffix)]
    return None
