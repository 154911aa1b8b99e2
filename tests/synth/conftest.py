"""Fixtures of the generation stage: a project with a real knowledge store, and protocol servers."""

from __future__ import annotations

import pytest
from synth_data import add_document, fact_chunks

from ftstudio.project import Project
from protocol_servers import OllamaServer, OpenAIServer


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
