"""Test data of the generation stage: invented factual chunks and a helper that stores them as a document."""

from __future__ import annotations

import random

from ftstudio.knowledge.store import KnowledgeStore, NewChunk, NewDocument
from ftstudio.project import Project

_SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "ra",
    "tu",
    "ve",
    "no",
    "sha",
    "qui",
    "ben",
    "dor",
    "fal",
    "gim",
    "hux",
    "jor",
    "kel",
    "lum",
    "nar",
    "pek",
    "ros",
    "tav",
]


def invented_word(rng: random.Random) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(3))


def fact_chunks(n: int, seed: int = 7) -> list[str]:
    """`n` chunks of three distinct factual sentences each (invented names, so no two chunks share a fact)."""
    rng = random.Random(seed)
    chunks = []
    for i in range(n):
        a, b, c, d = (invented_word(rng).capitalize() for _ in range(4))
        chunks.append(
            f"The river {a} flows through the valley of {b} for {100 + i} kilometres. "
            f"Farmers along the {a} grow {c} barley because the soil there holds water well. "
            f"Every spring the town of {d} celebrates the first harvest with a festival of lanterns."
        )
    return chunks


def add_document(project: Project, name: str, texts: list[str]) -> list[int]:
    """Store a document made of these chunk texts through the store's own insert API; return the chunk ids."""
    with KnowledgeStore.open(project.knowledge_db) as store:
        info = store.replace_document(
            NewDocument(name, f"sha-{name}", "markdown", 100, 1.0, "estimate-v1", 512, 64, title=name),
            [NewChunk(t, len(t.split()), ("Geography", f"Part {i}")) for i, t in enumerate(texts)],
        )
        return [c.id for c in store.document_chunks(info.id)]
