"""The knowledge report card and what training takes from the data: "with passages" lines masked to the answer,
review decisions applied, and a run graded on the frozen eval set by the protocol server's judge."""

from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer

from ftstudio.dataset import parse_record
from ftstudio.knowledge.store import KnowledgeStore, NewChunk, NewDocument
from ftstudio.synth import evalset, review
from ftstudio.synth.mix import passages_prompt
from ftstudio.train.card import CONDITIONS, summarize, tally
from ftstudio.train.formatting import IGNORE, Formatter, end_of_turn_ids
from ftstudio.train.runner import train
from protocol_servers import OllamaServer, grade_verdict

FACTS = [
    "The lighthouse of Kelmora was built in 1871 from grey granite quarried on the island.",
    "Its Fresnel lens concentrates the lamp into a beam seen from twenty nautical miles.",
    "Keepers wound the clockwork every four hours and logged the weather in a ledger.",
    "The harbour of Vantrel shelters forty fishing boats behind a stone breakwater.",
    "Fishermen of Vantrel land mackerel in summer and herring through the winter months.",
    "A ferry crosses from Vantrel to Kelmora twice a day when the sea is calm.",
]


def add_facts(project) -> None:
    with KnowledgeStore.open(project.knowledge_db) as store:
        store.replace_document(
            NewDocument("coast.md", "sha-coast", "markdown", 100, 1.0, "estimate-v1", 512, 64, title="coast"),
            [NewChunk(t, len(t.split()), ("Coast", f"Part {i}")) for i, t in enumerate(FACTS)],
        )


def test_with_passages_lines_render_through_the_template_and_train_the_answer_only(tiny_model):
    folder = tiny_model("qwen2")
    tok = AutoTokenizer.from_pretrained(folder)
    fmt = Formatter.create(tok, None, end_of_turn_ids(str(folder), tok))
    answer = "It was built in 1871 from grey granite."
    prompt = passages_prompt("When was the lighthouse built?", [FACTS[3], FACTS[0], FACTS[5]])
    enc = fmt.encode(parse_record({"instruction": prompt, "output": answer}))
    trained = [t for t, label in zip(enc.input_ids, enc.labels, strict=True) if label != IGNORE]
    assert tok.decode(trained) == answer + "<|im_end|>\n"  # the answer and its end of turn, nothing else
    masked = tok.decode([t for t, label in zip(enc.input_ids, enc.labels, strict=True) if label == IGNORE])
    assert all(" ".join(f.split()) in masked for f in (FACTS[3], FACTS[0], FACTS[5]))
    assert "<|im_start|>user" in masked and "<|im_start|>assistant" in masked  # the model's own template


def test_review_limits_what_is_trained(make_project):
    project = make_project("llama", max_steps=1, eval_fraction=0.0)
    review.decide(project, [1, 2, 3, 4, 5], "accepted")
    review.decide(project, [6], "rejected")
    everything = train(project, project.settings().train)
    assert everything.warnings[0] == "1 rejected example(s) left out"
    project.update_settings("train", only_accepted=True)
    accepted = train(project, project.settings().train)
    runs = {r.run_id: json.loads((r.run_dir / "run.json").read_text()) for r in (everything, accepted)}
    assert runs[everything.run_id]["examples"]["train"] == 15  # 16 lines, one rejected
    assert runs[accepted.run_id]["examples"]["train"] == 5
    assert any("not yet accepted" in w for w in accepted.warnings)


def test_accuracies_come_from_the_verdicts():
    verdicts = {
        "base": ["wrong", "wrong", "partly", None],
        "tuned": ["correct", "wrong", "correct", "partly"],
        "base_passages": ["correct"] * 4,
        "tuned_passages": ["correct", "correct", "partly", "wrong"],
    }
    kinds = ["held_out", "seen", "paraphrase", "seen"]
    table = [
        {"kind": kinds[i], "answers": {c: {"verdict": verdicts[c][i]} for c in CONDITIONS}} for i in range(4)
    ]
    overall, splits = summarize(table)
    assert overall["base"] == {"correct": 0, "partly": 1, "wrong": 2, "graded": 3, "accuracy": 0.0,
                               "score": round(0.5 / 3, 4)}  # fmt: skip
    assert overall["tuned"]["accuracy"] == 0.5 and overall["tuned"]["score"] == 0.625
    assert overall["base_passages"]["accuracy"] == 1.0 and overall["tuned_passages"]["accuracy"] == 0.5
    assert splits["seen"]["questions"] == 2 and splits["seen"]["tuned"]["accuracy"] == 0.0
    assert splits["paraphrase"]["tuned_passages"] == tally(["partly"])
    assert tally([None, None])["accuracy"] is None  # nothing graded: no number, never a zero


@pytest.mark.slow
def test_a_run_ends_with_its_card_and_ftstudio_eval_reuses_cached_verdicts(cli, make_project):
    server = OllamaServer(models=["llama3:8b"]).start()
    try:
        project = make_project("llama", max_steps=2, eval_fraction=0.2)
        add_facts(project)
        project.update_settings("synth", provider="ollama", base_url=server.url, model="llama3:8b")
        project.update_settings("eval", max_new_tokens=6, passages=2, paraphrase_share=0.0, held_out_share=0.5)
        settings = project.settings()
        made = evalset.make_eval_set(project, settings.synth, settings.eval, 4)
        assert made.by_kind["held_out"] == 2 and made.by_kind["seen"] == 2

        result = train(project, settings.train)
        card = result.eval["card"]
        assert card["status"] == "graded" and card["questions"] == 4 and card["eval_set_version"] == made.version
        assert json.loads((result.run_dir / "eval.json").read_text())["card"] == card
        assert result.eval["base_eval_loss"] is not None  # the loss report stays beside the card
        items = {i.id: i for i in evalset.load(project).items}
        for row in card["table"]:
            item = items[row["id"]]
            for c in CONDITIONS:
                cell = row["answers"][c]
                # Each verdict is the judge's reading of this answer against the passage and reference.
                expected = grade_verdict(item.passage, item.reference, cell["answer"])["verdict"] if (
                    cell["answer"].strip()) else "wrong"  # fmt: skip
                assert cell["verdict"] == expected
        for c in CONDITIONS:
            assert card["conditions"][c] == tally([row["answers"][c]["verdict"] for row in card["table"]])
        with KnowledgeStore.open(project.knowledge_db) as store:  # "+passages": the store's top passages
            for row in card["table"]:
                assert row["passages"] == [h.chunk.id for h in store.search(row["question"], 2)] != []
        prompts = [r["body"]["messages"][0]["content"] for r in server.chat_requests()]
        graded = sum("Candidate answer:" in p for p in prompts)

        again = cli("eval", project.name, "--run", result.run_id, "--json")
        assert again.code == 0, again.stderr
        assert again.json()["conditions"] == card["conditions"]
        after = [r["body"]["messages"][0]["content"] for r in server.chat_requests()]
        assert sum("Candidate answer:" in p for p in after) == graded  # every verdict came from the cache
    finally:
        server.stop()

    # The judge gone (and the cache cleared): exit 0, a warning, answers kept, no accuracy, loss report kept.
    (project.dir / "judge_cache.db").unlink()
    down = cli("eval", project.name, "--run", result.run_id, "--json")
    assert down.code == 0, down.stderr
    assert "warning: no verdicts" in down.stderr
    unjudged = down.json()
    assert unjudged["status"] == "unjudged" and all(unjudged["conditions"][c]["accuracy"] is None for c in CONDITIONS)
    saved = json.loads((result.run_dir / "eval.json").read_text())
    assert saved["card"]["status"] == "unjudged" and saved["base_eval_loss"] == result.eval["base_eval_loss"]
    assert all(row["answers"]["tuned"]["answer"] is not None for row in saved["card"]["table"])


def test_eval_without_an_eval_set_names_the_fix(cli, make_project):
    project = make_project("llama", max_steps=1, eval_fraction=0.0)
    run = train(project, project.settings().train)
    assert "card" not in (run.eval or {})
    result = cli("eval", project.name, "--json")
    assert result.code == 2 and "--make-eval" in result.stderr
