"""The real `ftstudio` entry point: generate (exit codes, --json, SIGKILL and resume), helpers, data."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from synth_data import add_document, fact_chunks

from ftstudio.synth.state import RunState
from protocol_servers import OllamaServer, OpenAIServer, RepeatingOllamaServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_run_the_documents_cannot_fill_is_partly_done_exit_1(cli, grounded):
    """Asked for more pairs than the documents give: what was written is kept, and the CLI says it is partly done
    (the contract's exit code 1), why it stopped and what gives more."""
    project, _ = grounded

    with RepeatingOllamaServer() as server:
        result = cli("generate", "demo", "--provider", "ollama", "--base-url", server.url, "--model", "llama3:8b",
                     "--pairs", "30", "--concurrency", "2", "--set", "grounding_threshold=0", "--json")  # fmt: skip
    assert result.code == 1, result.stderr
    summary = result.json()
    assert summary["partial"] and summary["written"] == 1 and summary["stop_reason"] == "exhausted"
    assert "partly done: wrote 1 of 30 pairs" in result.stderr
    assert "stopped because the documents gave no more new pairs" in result.stderr and "--topic" in result.stderr
    assert len(project.sft_data.read_text().splitlines()) == 1


def test_generate_json_summary_and_human_output(cli, grounded, ollama_server):
    project, _ = grounded
    args = ("generate", "demo", "--provider", "ollama", "--base-url", ollama_server.url, "--model", "llama3:8b")
    result = cli(*args, "--pairs", "8", "--per-chunk", "2", "--json")
    assert result.code == 0, result.stderr
    summary = result.json()
    assert summary["written"] == 8 and summary["requests"] == 4 and summary["retries"] == 0
    assert set(summary) >= {"written", "dropped", "requests", "retries", "tokens", "cost_usd"}
    assert len(project.sft_data.read_text().splitlines()) == 8
    # A finished run is not resumed: the next call starts a new run and appends.
    again = cli(*args, "--pairs", "4")
    assert again.code == 0 and "Wrote 4 of 4 pairs" in again.stdout
    assert len(project.sft_data.read_text().splitlines()) == 12


def test_generate_exit_codes_name_the_fix(cli, grounded, ollama_server):
    nobody = f"127.0.0.1:{free_port()}"
    down = cli("generate", "demo", "--provider", "ollama", "--model", "llama3:8b", env={"OLLAMA_HOST": nobody})
    assert down.code == 3 and "ollama serve" in down.stderr and "OLLAMA_HOST" in down.stderr
    missing = cli("generate", "demo", "--provider", "ollama", "--base-url", ollama_server.url, "--model", "mistral")
    assert missing.code == 3 and "ollama pull mistral" in missing.stderr
    assert cli("init", "other").code == 0
    no_model = cli("generate", "other", "--base-url", ollama_server.url, "--topic", "fractions", "--json")
    assert no_model.code == 2 and no_model.json()["exit_code"] == 2 and "--model" in no_model.stderr


def test_empty_store_without_topic_is_exit_2_and_topic_only_works(cli, project, openai_server):
    base = ("generate", "demo", "--provider", "openai", "--base-url", openai_server.base_url, "--model", "test-model")
    empty = cli(*base, "--pairs", "3")
    assert empty.code == 2 and "--topic" in empty.stderr
    topic = cli(*base, "--pairs", "3", "--topic", "Generate 5th-grade math questions and answers", "--json")
    assert topic.code == 0 and topic.json()["written"] == 3 and topic.json()["mode"] == "topic"


def test_openrouter_key_is_required_and_never_lands_anywhere(cli, grounded, workspace):
    project, _ = grounded
    secret = "sk-or-v1-TOTALLY-SECRET-abcdef0123456789"
    prices = {"meta-llama/llama-3-70b-instruct": (5e-7, 1e-6)}
    with OpenAIServer(list(prices), prefix="/api/v1", api_key=secret, prices=prices) as server:
        base = ("generate", "demo", "--provider", "openrouter", "--base-url", server.base_url)
        base += ("--model", "meta-llama/llama-3-70b-instruct", "--pairs", "6")
        no_key = cli(*base, env={"OPENROUTER_API_KEY": ""})
        assert no_key.code == 3 and "OPENROUTER_API_KEY" in no_key.stderr
        wrong = cli(*base, env={"OPENROUTER_API_KEY": "sk-or-v1-wrong-key-000"})
        assert wrong.code == 3 and "unauthorised" in wrong.stderr and "wrong-key" not in wrong.stderr + wrong.stdout
        ok = cli(*base, "--json", env={"OPENROUTER_API_KEY": secret})
        assert ok.code == 0, ok.stderr
        summary = ok.json()
        assert summary["written"] == 6 and summary["cost_usd"] > 0
        assert secret not in ok.stdout + ok.stderr + wrong.stdout + wrong.stderr
    for path in workspace.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert secret.encode() not in data and b"wrong-key" not in data, path


def test_sigkill_mid_run_then_resume_writes_exactly_n(cli, project, workspace):
    ids = add_document(project, "atlas.md", fact_chunks(30, seed=5))
    with OllamaServer(latency_s=0.15) as server:
        args = ["generate", "demo", "--provider", "ollama", "--base-url", server.url, "--model", "llama3:8b"]
        args += ["--pairs", "40", "--per-chunk", "1", "--concurrency", "3", "--save"]
        env = {**os.environ, "FTSTUDIO_ROOT": str(workspace)}
        proc = subprocess.Popen([sys.executable, "-m", "ftstudio", *args], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if project.sft_data.exists() and len(project.sft_data.read_bytes().splitlines()) >= 8:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        killed_at = len(project.sft_data.read_bytes().splitlines())
        assert 8 <= killed_at < 40
        with RunState.open(project.dir / "generate.db") as state:
            (run,) = state.runs()
            in_flight = state.pending_tasks(run.id)
        assert in_flight  # requests were in flight when it died: their chunks must be sent again, not redrawn
        # A crash mid-write leaves half a line; the next run must cut it, not count or keep it.
        with project.sft_data.open("ab") as f:
            f.write(b'{"instruction": "half a li')
        # Resuming needs only the project's name: --save stored the helper settings in project.toml.
        result = cli("generate", "demo", "--json")
        assert result.code == 0, result.stderr
    summary = result.json()
    records = [json.loads(line) for line in project.sft_data.read_text().splitlines()]
    assert summary["written"] == 40 == len(records)
    tasks = [r["meta"]["task"] for r in records]
    assert len(set(tasks)) == 40  # one pair per task, no task written twice
    assert len({r["instruction"] for r in records}) == 40
    with RunState.open(project.dir / "generate.db") as state:
        uses = state.task_chunk_counts()
        (run,) = state.runs()
    assert run.status == "done" and run.written == 40
    # 40 tasks over 30 chunks: every chunk once before any twice, none three times.
    assert set(uses) == set(ids) and sorted(set(uses.values())) == [1, 2] and sum(uses.values()) == 40
    # The tasks in flight at the kill were sent again with their own chunks and landed (none redrawn, none lost).
    assert {t.id for t in in_flight} <= set(tasks)
    chunk_of_task = {r["meta"]["task"]: r["meta"]["chunk_ids"] for r in records}
    assert all(chunk_of_task[t.id] == list(t.chunk_ids) for t in in_flight)


def test_helpers_lists_models(cli, ollama_server, openrouter_server):
    result = cli("helpers", "--provider", "ollama", "--base-url", ollama_server.url)
    assert result.code == 0 and "llama3:8b" in result.stdout and "ctx 8192" in result.stdout
    listed = cli("helpers", "--provider", "openrouter", "--base-url", openrouter_server.base_url, "--json").json()
    (model,) = listed["models"]
    assert model["id"] == "meta-llama/llama-3-70b-instruct" and model["context_length"] == 131072
    assert model["prompt_price"] == 5e-7 and model["completion_price"] == 1e-6
    down = cli("helpers", "--provider", "ollama", env={"OLLAMA_HOST": f"127.0.0.1:{free_port()}"})
    assert down.code == 3 and "ollama serve" in down.stderr


def test_data_validates_summarises_imports_and_exports(cli, grounded, workspace, ollama_server):
    project, ids = grounded
    # One request at a time: which near-duplicate is dropped depends on the order replies arrive in.
    gen = cli("generate", "demo", "--provider", "ollama", "--base-url", ollama_server.url, "--model", "llama3:8b",
              "--pairs", "6", "--per-chunk", "3", "--concurrency", "1")  # fmt: skip
    assert gen.code == 0
    stats = cli("data", "demo", "--json")
    assert stats.code == 0, stats.stderr
    s = stats.json()
    assert s["examples"] == 6 and s["bad_lines"] == [] and s["duplicates"] == {"exact": 0, "near": 0}
    # At 3 pairs a chunk, 6 pairs use at least 2 chunks; more where a chunk's question is a near-duplicate of one
    # already written (the chunks are drawn in a new order each run).
    used = {c for line in project.sft_data.read_text().splitlines() for c in json.loads(line)["meta"]["chunk_ids"]}
    assert s["coverage"]["chunks"] == 12 and s["coverage"]["chunks_used"] == len(used) >= 2

    sharegpt = workspace / "mine.jsonl"
    sharegpt.write_text(
        json.dumps({"conversations": [{"from": "human", "value": "What is 2+2?"}, {"from": "gpt", "value": "4."}]})
        + "\nnot json\n"
        + json.dumps({"messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]})
        + "\n"
    )
    imported = cli("data", "demo", "--import", str(sharegpt), "--json")
    assert imported.code == 1 and imported.json()["imported"] == 2 and "line 2" in imported.stderr
    last = json.loads(project.sft_data.read_text().splitlines()[-2])
    assert last["instruction"] == "What is 2+2?" and last["output"] == "4."

    with project.sft_data.open("a") as f:
        f.write('{"instruction": "only a question"}\n')
    bad = cli("data", "demo")
    assert bad.code == 1 and "line 9" in bad.stderr and "'output' is missing" in bad.stderr
    assert "8 examples" in bad.stdout

    out = workspace / "export.jsonl"
    exported = cli("data", "demo", "--export", str(out), "--to", "sharegpt", "--json")
    # The bad line 9 is left out, and said so: partly done.
    assert exported.code == 1 and exported.json()["exported"] == 8
    assert exported.json()["skipped"] == [{"line": 9, "error": "'output' is missing"}]
    assert "line 9: left out: 'output' is missing" in exported.stderr
    first = json.loads(out.read_text().splitlines()[0])
    assert [m["from"] for m in first["conversations"]] == ["human", "gpt"]


def test_ctrl_c_stops_cleanly_and_the_next_call_finishes(cli, grounded, workspace):
    project, _ = grounded
    with OllamaServer(latency_s=0.2) as server:
        args = ["generate", "demo", "--provider", "ollama", "--base-url", server.url, "--model", "llama3:8b"]
        args += ["--pairs", "20", "--per-chunk", "1", "--concurrency", "2", "--json", "--save"]
        env = {**os.environ, "FTSTUDIO_ROOT": str(workspace)}
        proc = subprocess.Popen([sys.executable, "-m", "ftstudio", *args], env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
            project.sft_data.exists() and len(project.sft_data.read_bytes().splitlines()) >= 3
        ):
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        stdout, _ = proc.communicate(timeout=30)
        assert proc.returncode == 130
        stopped = json.loads(stdout)
        assert stopped["status"] == "stopped" and stopped["stop_reason"] == "cancelled"
        assert stopped["written"] == len(project.sft_data.read_text().splitlines()) < 20
        finished = cli("generate", "demo", "--json")
    assert finished.code == 0 and finished.json()["written"] == 20 and finished.json()["run"] == stopped["run"]
    records = [json.loads(line) for line in project.sft_data.read_text().splitlines()]
    assert len(records) == 20 and len({r["meta"]["task"] for r in records}) == 20


def test_ingest_markdown_then_generate_end_to_end(cli, project, workspace, ollama_server):
    docs = workspace / "notes"
    docs.mkdir()
    for name, seed in (("rivers.md", 11), ("towns.md", 12)):
        body = "\n\n".join(f"## Part {i}\n\n{text}" for i, text in enumerate(fact_chunks(3, seed=seed)))
        (docs / name).write_text(f"# {name[:-3].title()}\n\n{body}\n")
    ingested = cli("ingest", "demo", str(docs), "--chunk-tokens", "64", "--overlap", "0")
    assert ingested.code == 0, ingested.stderr
    result = cli("generate", "demo", "--provider", "ollama", "--base-url", ollama_server.url, "--model", "llama3:8b",
                 "--pairs", "6", "--per-chunk", "1", "--json")  # fmt: skip
    assert result.code == 0, result.stderr
    assert result.json()["written"] == 6 and result.json()["dropped"].get("ungrounded", 0) == 0
    records = [json.loads(line) for line in project.sft_data.read_text().splitlines()]
    assert {Path(r["meta"]["document"]).name for r in records} == {"rivers.md", "towns.md"}
    coverage = cli("data", "demo", "--json").json()["coverage"]
    assert coverage["chunks_used"] == 6 and len(coverage["documents"]) == 2


def test_data_make_eval_and_review_through_the_cli(cli, grounded, ollama_server):
    project, _ = grounded
    setup = ("--provider", "ollama", "--base-url", ollama_server.url, "--model", "llama3:8b")
    # --save: the eval set is written by the project's helper, so the helper given here must be stored
    assert cli("generate", "demo", *setup, "--pairs", "6", "--per-chunk", "2", "--save").code == 0
    made = cli("data", "demo", "--make-eval", "5", "--json")
    assert made.code == 0, made.stderr
    result = made.json()
    assert result["questions"] == 5 and set(result["by_kind"]) == {"held_out", "seen", "paraphrase"}
    assert len(project.eval_set.read_text().splitlines()) == 5
    again = cli("data", "demo", "--make-eval", "5")
    assert again.code == 2 and "--fresh" in again.stderr

    reviewed = cli("data", "demo", "--accept", "1-3", "--reject", "4", "--json")
    assert reviewed.code == 0, reviewed.stderr
    assert reviewed.json()["review"] == {"accepted": 3, "rejected": 1, "pending": 2, "edited": 0}
    edited = cli("data", "demo", "--edit", "5", "--question", "Which valley?", "--answer", "The valley of it.")
    assert edited.code == 0 and "accepted 4" in edited.stdout
    line5 = json.loads(project.sft_data.read_text().splitlines()[4])
    assert line5["instruction"] == "Which valley?" and line5["meta"]["helper"] == "ollama:llama3:8b"
    bad = cli("data", "demo", "--accept", "2-x")
    assert bad.code == 2 and "2-x" in bad.stderr
    summary = cli("data", "demo", "--json").json()
    assert summary["review"]["rejected"] == 1 and summary["eval_set"]["questions"] == 5


def test_generate_mix_options_are_used_and_saved_with_save(cli, grounded, ollama_server):
    project, _ = grounded
    setup = ("--provider", "ollama", "--base-url", ollama_server.url, "--model", "llama3:8b", "--per-chunk", "2")
    mix = ("--paraphrases", "1", "--followups", "--question-types", "fact,numeric", "--passages-share", "1",
           "--distractors", "1")  # fmt: skip
    result = cli("generate", "demo", *setup, *mix, "--pairs", "2", "--save", "--json")
    assert result.code == 0, result.stderr
    synth = project.settings().synth
    assert synth.question_types == ["fact", "numeric"] and synth.paraphrases == 1 and synth.followups
    assert synth.passages_share == 1.0 and synth.distractors == 1
    prompt = ollama_server.chat_requests()[0]["body"]["messages"][0]["content"]
    assert "facts (who, what, when, where); numeric questions" in prompt and "explanations" not in prompt
    kinds = [json.loads(line)["meta"].get("kind") for line in project.sft_data.read_text().splitlines()]
    assert sorted(kinds, key=str) == sorted([None, None, "paraphrase", "paraphrase", "followup", "followup",
                                             "passages", "passages"], key=str)  # fmt: skip
    bad = cli("generate", "demo", "--question-types", "gossip", "--pairs", "1")
    assert bad.code == 2 and "question_types" in bad.stderr
