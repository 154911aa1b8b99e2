"""Where generation's grounding comes from: the project's knowledge store, read through its public contract."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftstudio.errors import BadInput

TOPIC_CANDIDATES = 500  # how many search hits a --topic narrows the draw to


@dataclass(frozen=True)
class SourceChunk:
    id: int
    document: str
    location: str
    text: str


class ChunkSource:
    """The chunks of one knowledge store; `ids(topic)` is the pool to draw from, `get(ids)` their text."""

    def __init__(self, store: Any):
        self.store = store

    def count(self) -> int:
        return int(self.store.count_chunks())

    def ids(self, topic: str | None) -> list[int]:
        if not topic:
            return list(self.store.chunk_ids())
        hits = self.store.search(topic, TOPIC_CANDIDATES)
        ids = list(dict.fromkeys(h.chunk.id for h in hits))
        if not ids:
            raise BadInput(
                f"no chunk of the knowledge store matches the topic {topic!r}",
                hint="use words that occur in the documents, or --topic-only to generate without them",
            )
        return ids

    def search(self, query: str, k: int) -> list[SourceChunk]:
        """The `k` chunks best matching `query` (full-text search), best first."""
        hits = self.store.search(query, k)
        return [SourceChunk(h.chunk.id, h.chunk.document, h.chunk.location, h.chunk.text) for h in hits]

    def get(self, ids: tuple[int, ...]) -> list[SourceChunk]:
        return [SourceChunk(c.id, c.document, c.location, c.text) for c in self.store.get_chunks(list(ids))]


@contextmanager
def open_source(db: Path):
    """Yield a ChunkSource over the store at `db`, or None when the project has no store (or an empty one)."""
    if not db.exists():
        yield None
        return
    from ftstudio.knowledge.store import KnowledgeStore

    with KnowledgeStore.open(db) as store:
        source = ChunkSource(store)
        yield source if source.count() > 0 else None
