"""Against llama-cpp-python's own OpenAI-compatible server, on a GGUF exported here from a tiny model.

That server answers `response_format: json_schema` with a 500 naming `response_format` and enforces
`json_object` + `schema` with a grammar: the provider must settle on the second form after one refusal, the
constrained JSON must parse, and a run whose random-model pairs all fail the quality filters must end with a summary
of what was dropped and why, not with a protocol failure.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from ftstudio.synth.parsing import parse_pairs
from ftstudio.synth.providers import create
from llama_server import LlamaCppServer, server_missing

pytestmark = [pytest.mark.llama, pytest.mark.skipif(server_missing() is not None, reason=str(server_missing()))]

ALIAS = "tiny-llama"
# Bounded strings and items, so even a random model's grammar-constrained reply ends well within max_tokens.
BOUNDED_PAIRS = {
    "type": "object",
    "properties": {
        "pairs": {
            "type": "array",
            "minItems": 1,
            "maxItems": 2,
            "items": {
                "type": "object",
                "properties": {
                    "question": {"type": "string", "maxLength": 60},
                    "answer": {"type": "string", "maxLength": 80},
                },
                "required": ["question", "answer"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["pairs"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def llama_server(tiny_model, tmp_path_factory):
    from ftstudio.export.gguf.writer import export_gguf

    folder = tmp_path_factory.mktemp("llama-server")
    # The exporter's own GGUF writer, as `ftstudio export --format gguf` uses it after merging a run's adapter.
    gguf_path = export_gguf(tiny_model("llama"), folder / "tiny-llama-f16.gguf", "f16")
    with LlamaCppServer(gguf_path, alias=ALIAS, log=folder / "server.log") as server:
        yield server


def _statuses(lines: list[str]) -> list[str]:
    return [line.rsplit('" ', 1)[1].split()[0] for line in lines]


def test_helpers_lists_the_servers_model(cli, llama_server):
    listed = cli("helpers", "--provider", "openai", "--base-url", llama_server.url, "--json")
    assert listed.code == 0, listed.stderr
    assert [m["id"] for m in listed.json()["models"]] == [ALIAS]
    human = cli("helpers", "--provider", "openai", "--base-url", llama_server.base_url)
    assert human.code == 0 and ALIAS in human.stdout


def test_provider_settles_on_json_object_and_the_constrained_json_parses(llama_server):
    before = len(llama_server.access_lines())
    prompt = 'Write 2 question-answer pairs as JSON.\n"""\nThe river Kalomi is long. Farmers grow barley.\n"""'

    async def main():
        async with create("openai", base_url=llama_server.base_url) as provider:
            replies = await asyncio.gather(
                *(
                    provider.chat(ALIAS, [{"role": "user", "content": prompt}], schema=BOUNDED_PAIRS, seed=i,
                                  temperature=1.0, max_tokens=400)
                    for i in range(3)
                )
            )  # fmt: skip
            return replies, provider.structured_form

    replies, form = asyncio.run(main())
    assert form == "json_object" and all(r.structured and r.tokens_out > 0 for r in replies)
    for reply in replies:
        # The grammar made it JSON of the schema's shape; like llama.cpp's JSON grammar, the reading lets raw control
        # characters stand inside strings (a random model writes them).
        data = json.loads(reply.text, strict=False)
        assert set(data) == {"pairs"} and all(set(p) == {"question", "answer"} for p in data["pairs"])
        assert 1 <= len(data["pairs"]) <= 2
        assert all(len(p["question"]) <= 60 and len(p["answer"]) <= 80 for p in data["pairs"])
        assert len(parse_pairs(reply.text)) == len(data["pairs"])
    # One refusal of json_schema (the first request went alone), then only json_object requests, all answered.
    assert _statuses(llama_server.access_lines()[before:]) == ["500", "200", "200", "200"]


def test_generate_against_the_server_ends_with_a_summary_of_the_drops(cli, grounded, llama_server):
    project, _ = grounded
    # A short reply limit keeps the random model's runs quick; its pairs (if any survive truncation) are noise.
    project.update_settings("synth", max_tokens=300, seed=1)
    before = len(llama_server.access_lines())
    args = ("generate", "demo", "--provider", "openai", "--base-url", llama_server.url, "--model", ALIAS,
            "--pairs", "3", "--concurrency", "2")  # fmt: skip
    result = cli(*args, "--json", timeout=600)
    assert result.code == 1, result.stderr  # partly done: nothing usable, each drop named
    summary = result.json()
    assert summary["status"] == "stopped" and summary["stop_reason"] == "exhausted"
    assert summary["structured_output"] == "json_object"
    assert summary["failures"] == 0 and summary["retries"] == 0 and summary["written"] == 0
    dropped = summary["dropped"]
    assert sum(dropped.values()) >= summary["requests"] >= 20  # every reply gave at least one drop
    assert set(dropped) <= {"unparseable_reply", "empty", "too_short", "too_long", "ungrounded", "duplicate"}
    assert "wrote 0 of 3 pairs" in result.stderr and "none of the helper's replies gave a usable pair" in result.stderr
    assert "[synth]" in result.stderr and not summary["partial"]
    # The server was asked json_schema once (refused, and asked again at once in the next form, which the run does
    # not count as a request of its own), then json_object for the rest of the run.
    statuses = _statuses(llama_server.access_lines()[before:])
    assert statuses[0] == "500" and set(statuses[1:]) == {"200"} and len(statuses) == summary["requests"] + 1
    assert not project.sft_data.exists() or project.sft_data.read_text() == ""
