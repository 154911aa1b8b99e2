"""Generation in-process against the protocol servers: exact counts, coverage, filters, retries, stops, resume."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import pytest

from ftstudio.dataset import read_dataset
from ftstudio.errors import BadInput, Unavailable
from ftstudio.synth.generate import generate
from ftstudio.synth.settings import SynthSettings
from ftstudio.synth.state import RunState
from protocol_servers import OllamaServer, OpenAIServer, RepeatingOllamaServer


def settings(server, provider="ollama", **kw) -> SynthSettings:
    base = server.base_url if provider != "ollama" else server.url
    defaults = {"model": "llama3:8b" if provider == "ollama" else "test-model", "pairs_per_chunk": 2}
    return SynthSettings(provider=provider, base_url=base, **{**defaults, **kw})


def lines(project) -> list[dict]:
    return [json.loads(line) for line in project.sft_data.read_text().splitlines()]


def test_grounded_run_writes_exactly_n_and_covers_every_chunk_before_reuse(grounded, ollama_server):
    project, ids = grounded
    events = []
    summary = generate(project, settings(ollama_server, concurrency=3), 30, progress=events.append)
    records = lines(project)
    assert summary["written"] == len(records) == 30 and summary["status"] == "done"
    assert summary["requests"] == len(ollama_server.chat_requests()) and summary["tokens"]["out"] > 0
    uses = Counter(c for r in records for c in r["meta"]["chunk_ids"])
    assert set(uses) == set(ids)  # 15+ requests over 12 chunks: every chunk used
    with RunState.open(project.dir / "generate.db") as state:
        counts = state.task_chunk_counts()
    assert max(counts.values()) - min(counts.values()) <= 1  # never reused before all were used
    for r in records:
        assert r["meta"]["helper"] == "ollama:llama3:8b" and r["meta"]["document"] in ("rivers.md", "towns.md")
        assert r["output"] in json.dumps(r)  # the answer is a sentence of its chunk
    assert events[-1].done == 30 and events[-1].total == 30 and "tokens_in" in events[-1].data
    # Structured output asked for with Ollama's `format`; the prompt carried the chunk.
    sent = ollama_server.chat_requests()[0]["body"]
    assert sent["format"]["required"] == ["pairs"] and '"""' in sent["messages"][0]["content"]
    assert (project.dir / "prompts" / "generate.md").is_file()


def test_tasks_recorded_ahead_and_never_sent_are_released_when_the_run_is_done(grounded, ollama_server):
    project, _ = grounded
    # Two empty replies first: the run expects few pairs per request and records many tasks ahead; the full
    # replies after them finish the run early, leaving tasks that were never sent.
    ollama_server.script("empty", "empty")
    summary = generate(project, settings(ollama_server, concurrency=2), 6)
    assert summary["status"] == "done" and summary["written"] == 6 == len(lines(project))
    with RunState.open(project.dir / "generate.db") as state:
        assert state.pending_tasks(summary["run"]) == []
        dropped = state.conn.execute("SELECT COUNT(*) FROM tasks WHERE state = 'dropped'").fetchone()[0]
        counts = state.task_chunk_counts()
    assert dropped > 0  # there were some, and they were released
    # Every chunk use counted is a request sent: the released tasks gave theirs back.
    assert sum(counts.values()) == summary["requests"] == len(ollama_server.chat_requests())
    assert max(counts.values()) - min(counts.values()) <= 1


def test_topic_only_mode_and_edited_template(project, openai_server):
    template = project.dir / "prompts" / "topic.md"
    template.parent.mkdir(parents=True)
    template.write_text('Task: $topic. For $audience. Write $k question-answer pairs as JSON {"pairs": [...]}.')
    s = settings(openai_server, "openai", pairs_per_chunk=4, audience="5th graders")
    summary = generate(project, s, 10, topic="Generate 5th-grade math questions and answers")
    records = lines(project)
    assert summary["written"] == 10 == len(records) and summary["mode"] == "topic"
    assert all(r["meta"]["chunk_ids"] == [] and r["meta"]["topic"].startswith("Generate 5th") for r in records)
    prompt = openai_server.chat_requests()[0]["body"]["messages"][0]["content"]
    assert prompt.startswith("Task: Generate 5th-grade math") and "For 5th graders. Write 4 question" in prompt


def test_nothing_to_ground_on_and_no_topic_is_bad_input(project, ollama_server):
    with pytest.raises(BadInput, match="no documents"):
        generate(project, settings(ollama_server), 5)
    assert not ollama_server.chat_requests()


def test_faulty_replies_are_retried_repaired_or_dropped_by_reason(grounded, ollama_server):
    project, _ = grounded
    ollama_server.script("500", "think", "truncated", "empty", "prose", "429")
    started = time.monotonic()
    summary = generate(project, settings(ollama_server, concurrency=1, pairs_per_chunk=3), 12)
    assert summary["written"] == 12 == len(lines(project))
    assert summary["retries"] == 2  # the 500 and the 503 busy (Retry-After: 1, honoured)
    assert time.monotonic() - started >= 1.0
    assert summary["dropped"]["unparseable_reply"] == 1  # the empty reply
    assert summary["requests"] == len(ollama_server.chat_requests())


def test_ungrounded_and_duplicate_pairs_are_dropped(grounded):
    project, _ = grounded
    from ftstudio.dataset import append_records
    from ftstudio.knowledge.store import KnowledgeStore

    # The file already holds the question each chunk's first sentence gives: those come back as duplicates.
    with KnowledgeStore.open(project.knowledge_db) as store:
        texts = [c.text for c in store.get_chunks(store.chunk_ids())]
    oracle = OllamaServer()
    existing = [oracle._grounded_pairs(t, 1)[0] for t in texts]
    append_records(project.sft_data, [{"instruction": p["question"], "output": p["answer"]} for p in existing])

    class Inventing(OllamaServer):
        def answer_text(self, prompt, fault):
            if self._counter % 3 == 0:
                invented = {
                    "question": "What do astronauts eat?",
                    "answer": "Freeze-dried meals rehydrated with water.",
                }
                return json.dumps({"pairs": [invented]})
            return super().answer_text(prompt, fault)

    with Inventing() as server:
        summary = generate(project, settings(server, concurrency=2, pairs_per_chunk=1), 10)
    assert summary["written"] == 10 and summary["dropped"]["ungrounded"] >= 1 and summary["dropped"]["duplicate"] >= 1
    questions = [r["instruction"] for r in lines(project)]
    assert len(questions) == 22 and len(set(questions)) == 22
    assert not any("astronauts" in q for q in questions)


def test_a_helper_that_only_repeats_itself_stops_as_exhausted(grounded):
    project, _ = grounded

    with RepeatingOllamaServer() as server:
        summary = generate(project, settings(server, concurrency=2, grounding_threshold=0), 50)
    assert summary["status"] == "stopped" and summary["stop_reason"] == "exhausted" and summary["written"] == 1
    assert summary["dropped"]["duplicate"] >= 20
    # It wrote a pair and the documents gave no more: partly done, in words every face shows.
    assert summary["partial"] and summary["stopped_because"].startswith("the documents gave no more new pairs")
    assert "--topic" in summary["to_get_more"]


def test_a_server_without_json_schema_is_asked_once_then_in_its_own_form_for_the_whole_run(grounded):
    project, _ = grounded
    # As llama-cpp-python's server answers: json_schema refused with a 500 naming response_format, json_object with
    # the schema accepted. Eight requests in flight; the refusal is neither a retry nor a failure.
    with OpenAIServer(["test-model"], formats=("json_object",), format_status=500, latency_s=0.02) as server:
        summary = generate(project, settings(server, "openai", concurrency=8), 12)
        forms = [r["body"]["response_format"]["type"] for r in server.chat_requests()]
    assert summary["status"] == "done" and summary["written"] == 12 and summary["structured_output"] == "json_object"
    assert summary["retries"] == 0 and summary["failures"] == 0
    assert forms[0] == "json_schema" and forms[1:] == ["json_object"] * summary["requests"]


def test_a_bad_key_stops_the_run_with_unavailable_and_the_key_stays_secret(grounded, monkeypatch):
    project, _ = grounded
    secret = "sk-or-this-is-secret-987"
    with (
        OpenAIServer(["test-model"], prefix="/api/v1", api_key="sk-or-another") as server,
        pytest.raises(Unavailable) as caught,
    ):
        generate(project, settings(server, "openrouter"), 5, api_key=secret)
    assert "unauthorised" in str(caught.value) and secret not in str(caught.value)
    for path in project.dir.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_repeated_server_failures_stop_with_the_reason(grounded):
    project, _ = grounded
    with OllamaServer() as server:
        server.always = "500"
        with pytest.raises(Unavailable, match="stopped after 0 of 5 pairs"):
            generate(project, settings(server, concurrency=1, max_attempts=2), 5)
        assert len(server.chat_requests()) == 6  # three requests in a row, two attempts each
        with RunState.open(project.dir / "generate.db") as state:
            run = state.unfinished_run()
        assert run.status == "failed" and run.failures == 3 and run.retries == 3


def test_max_cost_stops_before_going_over(grounded, openrouter_server):
    project, _ = grounded
    model = "meta-llama/llama-3-70b-instruct"
    s = settings(openrouter_server, "openrouter", model=model, max_tokens=100, concurrency=4)
    # One request's bound: 4096 prompt tokens * 5e-7 + 100 * 1e-6 = 0.0021548 USD.
    summary = generate(project, s, 100, api_key="sk-or-secret-123456", max_cost=0.003)
    assert summary["status"] == "stopped" and summary["stop_reason"] == "max_cost"
    bound = 4096 * 5e-7 + 100 * 1e-6
    # It stopped only when one more request could have gone over, and never went over.
    assert summary["cost_usd"] <= 0.003 < summary["cost_usd"] + bound
    assert summary["requests"] >= 2 and summary["written"] == len(lines(project)) < 100


def test_cancel_then_resume_reaches_the_total_without_reassigning_chunks(grounded):
    project, ids = grounded
    cancel = threading.Event()
    with OllamaServer(latency_s=0.3) as server:
        timer = threading.Timer(0.5, cancel.set)
        timer.start()
        first = generate(project, settings(server, concurrency=4, pairs_per_chunk=1), 10, cancel=cancel)
        assert first["status"] == "stopped" and first["stop_reason"] == "cancelled" and first["written"] < 10
        second = generate(project, settings(server, concurrency=4, pairs_per_chunk=1), 10)
    assert second["run"] == first["run"] and second["written"] == 10 and second["status"] == "done"
    records = lines(project)
    assert len(records) == 10
    chunk_of = [r["meta"]["chunk_ids"][0] for r in records]
    assert len(set(chunk_of)) == 10  # ten pairs from ten different chunks: no chunk assigned twice
    tasks = [r["meta"]["task"] for r in records]
    assert len(set(tasks)) == len(tasks)
    assert read_dataset(project.sft_data).errors == []


def test_slow_reply_times_out_and_is_retried(grounded):
    project, _ = grounded
    with OllamaServer(slow_s=1.5) as server:
        server.script("slow")
        summary = generate(project, settings(server, concurrency=1, timeout_s=0.3, pairs_per_chunk=2), 2)
    assert summary["written"] == 2 and summary["retries"] == 1 and summary["requests"] == 2


def test_judge_pass_drops_what_the_judge_rejects(grounded):
    project, _ = grounded

    class Judging(OllamaServer):
        def answer_text(self, prompt, fault):
            if prompt.startswith("Does the source text support"):
                return json.dumps({"supported": "festival" not in prompt.split("Answer:")[1]})
            return super().answer_text(prompt, fault)

    with Judging() as server:
        summary = generate(project, settings(server, concurrency=2, pairs_per_chunk=3, judge=True), 12)
        judged = [r for r in server.chat_requests() if "Does the source" in r["body"]["messages"][0]["content"]]
    assert summary["written"] == 12 and summary["dropped"]["judge_rejected"] >= 4
    assert judged and judged[0]["body"]["format"]["required"] == ["supported"]
    assert not any("festival" in r["output"] for r in lines(project))


def test_a_run_that_never_started_is_replaced_and_topic_narrows_the_chunks(grounded, ollama_server):
    project, _ = grounded
    from ftstudio.knowledge.store import KnowledgeStore

    with KnowledgeStore.open(project.knowledge_db) as store:
        chunks = store.get_chunks(store.chunk_ids())
    river = chunks[3].text.split()[2]  # "The river <Name> flows ..."
    matching = {c.id for c in chunks if river in c.text}
    with OllamaServer(models=[]) as empty, pytest.raises(Unavailable, match="ollama pull"):
        generate(project, settings(empty), 5)  # recorded, then failed before any request
    summary = generate(project, settings(ollama_server, pairs_per_chunk=1), 3, topic=river)
    assert summary["written"] == 3 and summary["topic"] == river
    with RunState.open(project.dir / "generate.db") as state:
        assert [r.stop_reason for r in state.runs()] == ["abandoned", None]
    # Narrowed by the topic: only chunks the full-text search found were used.
    assert {c for r in lines(project) for c in r["meta"]["chunk_ids"]} <= matching
    with pytest.raises(BadInput, match="no chunk of the knowledge store matches"):
        generate(project, settings(ollama_server), 4, topic="zebra quantum")
