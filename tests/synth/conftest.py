"""Fixtures of the generation stage: a project with a real knowledge store, and protocol servers."""

from __future__ import annotations

import random

import pytest

from ftstudio.knowledge.store import KnowledgeStore, NewChunk, NewDocument
from ftstudio.project import Project
from protocol_servers import OllamaServer, OpenAIServer

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


@pytest.fixture
def project(workspace) -> Project:
    return Project.create("demo", workspace)


@pytest.fixture
def grounded(project) -> tuple[Project, list[int]]:
    """The project with two documents, 12 chunks in all."""
    ids = add_document(project, "rivers.md", fact_chunks(8, seed=1))
    ids += add_document(project, "towns.md", fact_chunks(4, seed=2))
    return project, ids


@pytest.fixture
def ollama_server():
    with OllamaServer(models=["llama3:8b", "qwen2:7b"]) as server:
        yield server


@pytest.fixture
def openai_server():
    with OpenAIServer(models=["test-model"]) as server:
        yield server


@pytest.fixture
def openrouter_server():
    prices = {"meta-llama/llama-3-70b-instruct": (5e-7, 1e-6)}
    with OpenAIServer(list(prices), prefix="/api/v1", api_key="sk-or-secret-123456", prices=prices) as server:
        yield server
