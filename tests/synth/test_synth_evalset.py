"""The eval set, the judge, the training mix and review, against the protocol servers (and the offline helper)."""

from __future__ import annotations

import hashlib
import json

import pytest

from ftstudio.dataset import read_dataset
from ftstudio.errors import BadInput, Unavailable
from ftstudio.settings import EvalSettings
from ftstudio.synth import evalset, judge, review
from ftstudio.synth.generate import generate
from ftstudio.synth.quality import DuplicateIndex
from ftstudio.synth.settings import SynthSettings
from protocol_servers import OpenAIServer, grade_verdict


def helper(server, **kw) -> SynthSettings:
    return SynthSettings(provider="ollama", base_url=server.url, model="llama3:8b", pairs_per_chunk=2, **kw)


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_eval_set_is_disjoint_from_training_and_tags_its_kinds(grounded, ollama_server):
    project, ids = grounded
    s = helper(ollama_server)
    generate(project, s, 8)  # training pairs first: their chunks are the "seen" ones
    train_lines = lines(project.sft_data)
    used = {c for r in train_lines for c in r["meta"]["chunk_ids"]}
    result = evalset.make_eval_set(project, s, EvalSettings(), 10)
    items = lines(project.eval_set)
    assert result.questions == len(items) == 10
    assert result.version == hashlib.sha256(project.eval_set.read_bytes()).hexdigest()[:12]
    kinds = {k: [i for i in items if i["kind"] == k] for k in evalset.KINDS}
    assert len(kinds["held_out"]) == 3 and len(kinds["paraphrase"]) == 3 and len(kinds["seen"]) == 4
    # Held-out questions come from chunks no training line used; seen ones from chunks training did use.
    assert all(set(i["chunk_ids"]).isdisjoint(used) for i in kinds["held_out"])
    assert all(set(i["chunk_ids"]) <= used for i in kinds["seen"])
    # Paraphrases: a training question in new words, the training answer as reference, tagged with its origin.
    by_question = {r["instruction"]: r for r in train_lines}
    for item in kinds["paraphrase"]:
        original = by_question[item["meta"]["paraphrase_of"]]
        assert item["reference"] == original["output"] and item["question"] != original["instruction"]
        assert item["passage"] and original["output"] in item["passage"]
    # No eval question is (nearly) a training question.
    index = DuplicateIndex(0.8)
    for r in train_lines:
        index.add_if_new(r["instruction"])
    assert all(index.add_if_new(i["question"]) for i in items)
    # Frozen: asking again without --fresh changes nothing.
    before = project.eval_set.read_bytes()
    with pytest.raises(BadInput, match="frozen"):
        evalset.make_eval_set(project, s, EvalSettings(), 4)
    assert project.eval_set.read_bytes() == before

    # Generation afterwards never draws a held-out chunk and never writes an eval question.
    held = evalset.load(project).held_out
    assert held
    generate(project, s, 30, fresh=True)
    after = lines(project.sft_data)
    assert all(set(r["meta"]["chunk_ids"]).isdisjoint(held) for r in after)
    assert {r["instruction"] for r in after}.isdisjoint({i["question"] for i in items})


def test_a_refused_eval_set_writes_nothing(grounded):
    project, _ = grounded
    down = SynthSettings(provider="ollama", base_url="http://127.0.0.1:9", model="llama3:8b", max_attempts=1)
    with pytest.raises(Unavailable):
        evalset.make_eval_set(project, down, EvalSettings(), 4)
    assert not project.eval_set.exists()


def _requests(passage: str) -> list[judge.GradeRequest]:
    q, ref = "Where does the river flow?", "The river Kalomi flows through the valley of Rosben for 100 kilometres."
    candidates = [ref, "It flows through the valley of Rosben.", "It is a mountain.", ""]
    return [judge.GradeRequest(passage, q, ref, c) for c in candidates]


def test_judge_verdicts_follow_the_passage_and_are_cached(project, ollama_server):
    passage = "The river Kalomi flows through the valley of Rosben for 100 kilometres. Farmers grow barley."
    requests = _requests(passage)
    result = judge.grade(project, helper(ollama_server), EvalSettings(), requests)
    got = [v.verdict if v else None for v in result.verdicts]
    expected = [grade_verdict(passage, r.reference, r.candidate)["verdict"] for r in requests[:3]]
    assert got == [*expected, "wrong"] and expected == ["correct", "partly", "wrong"]
    assert result.asked == 3 and result.cached == 0  # the empty answer is wrong without asking
    sent = ollama_server.chat_requests()
    assert len(sent) == 3
    body = sent[0]["body"]
    assert body["options"]["temperature"] == 0 and body["options"]["seed"] == 0 and "verdict" in json.dumps(body)
    assert passage in body["messages"][0]["content"]  # the judge sees the source
    # The same answers again: every verdict from the cache, nothing asked.
    again = judge.grade(project, helper(ollama_server), EvalSettings(), requests)
    assert [v.verdict for v in again.verdicts] == got and again.cached == 3 and again.asked == 0
    assert len(ollama_server.chat_requests()) == 3


def test_judge_unreachable_raises_and_cost_is_capped(project, ollama_server):
    passage = "The river Kalomi flows through the valley of Rosben for 100 kilometres."
    down = SynthSettings(provider="ollama", base_url="http://127.0.0.1:9", model="llama3:8b", max_attempts=1)
    with pytest.raises(Unavailable):
        judge.grade(project, down, EvalSettings(), _requests(passage))
    prices = {"m": (1e-3, 1e-3)}  # a request costs well over a cent at these prices
    with OpenAIServer(["m"], prefix="/api/v1", api_key="k", prices=prices) as server:
        s = SynthSettings(provider="openrouter", base_url=server.base_url, model="m", concurrency=1)
        result = judge.grade(project, s, EvalSettings(max_cost=0.0001), _requests(passage), api_key="k")
    assert result.asked == 0 and all(v is None for v in result.verdicts[:3])
    assert any("cost cap" in w for w in result.warnings)


def test_mix_writes_paraphrases_followups_and_passages(grounded, ollama_server):
    project, _ = grounded
    s = helper(ollama_server, paraphrases=2, followups=True, passages_share=1.0, distractors=2)
    summary = generate(project, s, 6)
    records = lines(project.sft_data)
    plain = [r for r in records if "kind" not in r["meta"]]
    assert summary["written"] == len(plain) == 6  # only plain pairs count toward --pairs
    prompt = ollama_server.chat_requests()[0]["body"]["messages"][0]["content"]
    assert "2 other phrasings" in prompt and "follow-up question" in prompt
    by_kind = {k: [r for r in records if r["meta"].get("kind") == k] for k in ("paraphrase", "followup", "passages")}
    assert len(by_kind["paraphrase"]) == 12 and len(by_kind["followup"]) == 6 and len(by_kind["passages"]) == 6
    questions = {r["instruction"] for r in plain}
    assert all(r["meta"]["paraphrase_of"] in questions for r in by_kind["paraphrase"])
    assert all(len(r["messages"]) == 4 and r["messages"][0]["content"] in questions for r in by_kind["followup"])
    from ftstudio.knowledge.store import KnowledgeStore

    with KnowledgeStore.open(project.knowledge_db) as store:
        for r in by_kind["passages"]:
            ids = r["meta"]["passage_ids"]
            assert len(ids) == 3 and r["meta"]["chunk_ids"][0] in ids
            source = store.get_chunks([ids[r["meta"]["source_passage"] - 1]])[0]
            assert source.id == r["meta"]["chunk_ids"][0] and " ".join(source.text.split()) in r["instruction"]
            assert r["instruction"].endswith("Question: " + next(iter(
                p["instruction"] for p in plain if p["meta"]["task"] == r["meta"]["task"]
                and p["output"] == r["output"])))  # fmt: skip
    assert not read_dataset(project.sft_data).errors  # every variant is a valid training line


def test_review_keeps_provenance_and_limits_training(grounded, ollama_server):
    project, _ = grounded
    generate(project, helper(ollama_server), 4)
    before = lines(project.sft_data)
    review.decide(project, [1, 2], "accepted")
    review.decide(project, [3], "rejected")
    edited = review.edit(project, 2, "Which river is longest?", "The river is the longest of the valley.")
    after = lines(project.sft_data)
    assert after[1]["instruction"] == "Which river is longest?" and after[1]["meta"]["chunk_ids"]
    for old, new in zip(before, after, strict=True):  # provenance kept on every line
        assert {k: new["meta"][k] for k in old["meta"]} == old["meta"]
    assert edited["meta"]["review"] == "accepted" and edited["meta"]["edited"]
    examples = read_dataset(project.sft_data).examples
    assert review.counts(examples) == {"accepted": 2, "rejected": 1, "pending": 1, "edited": 1}
    everything_else, notes = review.for_training(examples, only_accepted=False, eval_questions=set())
    assert [e.line for e in everything_else] == [1, 2, 4] and "1 rejected" in notes[0]
    accepted, _ = review.for_training(examples, only_accepted=True, eval_questions=set())
    assert [e.line for e in accepted] == [1, 2]


def test_offline_helper_runs_the_flow_without_a_model(grounded):
    project, _ = grounded
    s = SynthSettings(provider="offline", model="rules", pairs_per_chunk=2, paraphrases=1)
    assert generate(project, s, 6)["written"] == 6
    result = evalset.make_eval_set(project, s, EvalSettings(), 6)
    assert result.questions == 6 and result.usage["cost_usd"] == 0
    item = evalset.load(project).items[0]
    graded = judge.grade(project, s, EvalSettings(), [
        judge.GradeRequest(item.passage, item.question, item.reference, item.reference),
        judge.GradeRequest(item.passage, item.question, item.reference, "No idea at all."),
    ])  # fmt: skip
    assert [v.verdict for v in graded.verdicts] == ["correct", "wrong"]
