"""Every tab's handlers, called through gradio_client against `ftstudio ui` running on 127.0.0.1.

Each test works in a project of its own, created as the page creates one and then brought to the state the test
starts from (conftest.py): the tests pass alone and in any order.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from gradio_client import handle_file
from projects import add_guide, add_pairs, copy_project, make_eval_set, project_name

from ftstudio.project import Project
from ftstudio.ui.common import shown_values


def needs_training() -> None:
    """Training, export and chat need the train stage (runner, runs, chat); skip cleanly where it is absent."""
    pytest.importorskip("ftstudio.train.runner")
    pytest.importorskip("ftstudio.train.chat")


EXAMPLE_DOC = Path(__file__).resolve().parents[2] / "src" / "ftstudio" / "examples" / "sourdough.md"

DOC = """# Lighthouses

## Fresnel lenses

A Fresnel lens concentrates the lamp's light into a horizontal beam using rings of prisms, so a small flame can be
seen from more than twenty nautical miles away.

## Keepers

Keepers trimmed the wicks, wound the clockwork that turned the lens, and logged the weather every four hours.
"""


LAMPS = [{"instruction": f"What is lamp {i}?", "output": f"Lamp {i} is a light."} for i in range(1, 4)]


@pytest.fixture
def project(client, studio, request) -> Project:
    """A new, empty project of this test's own, created through the page's Create project (so the page offers it)."""
    name = project_name(request)
    update, message, _ = client.predict(name, api_name="/create_project")
    assert update["value"] == name and "Created project" in message, message
    return Project.open(name, studio.root)


@pytest.fixture
def trained(project, trained_template) -> Project:
    """This test's project as a copy of the session's trained project (conftest.py): guide, pairs, tiny base model,
    one completed run, an eval set of 3 questions whose helper is gone."""
    copy_project(trained_template, project.dir)
    return project


def test_creating_a_project_twice_is_refused_with_a_message(client, project):
    update, message, kept = client.predict(project.name, api_name="/create_project")
    assert "already exists" in message and kept == project.name
    _, message, _ = client.predict("../evil", api_name="/create_project")
    assert "not a valid project name" in message


def test_knowledge_upload_ingest_documents_search_and_remove(client, studio, project, tmp_path):
    doc = tmp_path / "light houses (draft).md"
    doc.write_text(DOC)
    started = client.predict(
        project.name, [handle_file(str(doc))], None, 200, 20, *_extra_knowledge_fields(), api_name="/ingest"
    )
    assert started.startswith("Started ingest job"), started
    state = studio.wait_job(project.name, "ingest")
    assert state.status == "done", state.error
    # Stored under a safe name inside the project, and that is the path the store knows.
    stored = project.dir / "uploads" / "light_houses_draft_.md"
    assert stored.read_text() == DOC
    assert "--chunk-tokens=200 --overlap=20 --save" in state.cli
    assert project.settings().knowledge.chunk_tokens == 200  # what the form changed, the job saved

    result = client.predict(project.name, api_name="/documents")
    table = result[-2]
    assert table["data"][0][0] == "uploads/light_houses_draft_.md" and table["data"][0][3] >= 1

    hits = client.predict(project.name, "Fresnel prisms", 5, api_name="/search")
    assert "light_houses_draft_.md" in hits and "**Fresnel**" in hits

    message, table, _ = client.predict(project.name, str(stored), api_name="/remove_document")
    assert message.startswith("Removed") and table["data"] == []
    assert "No chunk matches" in client.predict(project.name, "Fresnel", 5, api_name="/search")


def _extra_knowledge_fields():
    """Values for the Knowledge settings fields after chunk_tokens and overlap, as the page shows them."""
    return _knowledge_defaults()[2:]


def _knowledge_defaults():
    from ftstudio.knowledge.settings import KnowledgeSettings

    return shown_values(KnowledgeSettings, KnowledgeSettings(), list(KnowledgeSettings.model_fields))


def test_base_model_catalog_check_and_saved_choice(client, project, tiny_model, tmp_path):
    rows = client.predict(project.name, api_name="/catalog")
    verdicts = {row[0]: row[4] for row in rows}
    assert verdicts and set(verdicts.values()) <= {"ok", "warn", "error"}
    # 4-bit models need CUDA, which this machine lacks: the catalog says so, with the reason.
    four_bit = [row for row in rows if row[0].endswith("bnb-4bit")]
    assert four_bit and all(row[4] == "error" and "CUDA" in row[5] for row in four_bit)

    folder = tiny_model("llama")
    verdict = client.predict(project.name, str(folder), False, api_name="/check_model")
    assert "**ok**" in verdict and "GiB" in verdict
    missing = client.predict(project.name, str(tmp_path / "no-model"), False, api_name="/check_model")
    assert "no-model" in missing and "→" in missing  # the message names the folder and says what to do

    message, current = client.predict(project.name, str(folder), False, api_name="/save_base_model")
    assert message.startswith("Saved") and str(folder) in current
    assert project.settings().base_model.model == str(folder)


def test_own_data_upload_appends_or_replaces_as_chosen_then_edits_and_deletes(client, project, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "q", "output": "a"}\n{"instruction": "q2"}\nnot json\n')
    message, *_ = client.predict(project.name, None, handle_file(str(bad)), api_name="/upload_data")
    assert "choose append or replace" in message and not project.sft_data.exists()
    message, *_ = client.predict(project.name, "replace", handle_file(str(bad)), api_name="/upload_data")
    assert "line 2" in message and "line 3" in message and not project.sft_data.exists()

    good = tmp_path / "mine.jsonl"
    rows = [{"instruction": f"What is lamp {i}?", "output": f"Lamp {i} is a light."} for i in range(1, 4)]
    good.write_text("".join(json.dumps(r) + "\n" for r in rows))
    message, summary, table, download = client.predict(project.name, "append", handle_file(str(good)),
                                                       api_name="/upload_data")  # fmt: skip
    assert "Added 3 examples" in message and "3 examples" in summary
    message, summary, table, download = client.predict(project.name, "append", handle_file(str(good)),
                                                       api_name="/upload_data")  # fmt: skip
    assert "6 examples" in summary
    message, summary, table, download = client.predict(project.name, "replace", handle_file(str(good)),
                                                       api_name="/upload_data")  # fmt: skip
    assert "3 examples" in summary and [r[0] for r in table["data"]] == [1, 2, 3]
    backup = next(project.data_dir.glob("sft_data.*.bak.jsonl"))
    assert backup.name in message and len(backup.read_text().splitlines()) == 6  # the replaced data is kept
    lines = [json.loads(x) for x in project.sft_data.read_text().splitlines()]
    assert [(r["instruction"], r["meta"]["imported_from"]) for r in lines] == [(r["instruction"], "mine.jsonl")
                                                                               for r in rows]  # fmt: skip

    edited = [[1, "What is lamp one?", "Lamp one is the first light.", "pending", "pair"], *table["data"][1:]]
    headers = ["line", "question", "answer", "review", "kind"]
    message, summary, table = client.predict(project.name, {"headers": headers, "data": edited},
                                             api_name="/save_data_edits")  # fmt: skip
    assert message == "Saved 1 edited lines." and table["data"][0][3] == "accepted"
    message, summary, table = client.predict(project.name, None, api_name="/delete_data_line")
    assert "Type the number of the line" in message
    message, summary, table = client.predict(project.name, 2, api_name="/delete_data_line")
    assert "2 examples" in summary
    lines = [json.loads(x) for x in project.sft_data.read_text().splitlines()]
    assert [(r["instruction"], r["output"]) for r in lines] == [
        ("What is lamp one?", "Lamp one is the first light."), (rows[2]["instruction"], rows[2]["output"])
    ]
    # the edited line keeps its provenance and counts as reviewed; a deleted line's neighbours keep theirs
    assert lines[0]["meta"]["imported_from"] == "mine.jsonl"
    assert lines[0]["meta"]["review"] == "accepted" and lines[0]["meta"]["edited"]
    assert lines[1]["meta"] == {"imported_from": "mine.jsonl"}


def test_generate_with_a_local_ollama_server_appends_grounded_pairs(client, studio, project):
    from ftstudio.synth.settings import SynthSettings
    from ftstudio.ui.tabs import generate
    from protocol_servers import OllamaServer

    add_pairs(project, 2)  # data of its own, after which the new pairs come
    doc = EXAMPLE_DOC
    client.predict(project.name, [handle_file(str(doc))], None, *_knowledge_defaults(), api_name="/ingest")
    assert studio.wait_job(project.name, "ingest").status == "done"
    before = len(project.sft_data.read_text().splitlines())
    with OllamaServer(models=["llama3:8b", "qwen2:7b"]) as server:
        update, message = client.predict("ollama", server.url, "", api_name="/helper_models")
        assert update["choices"] == [["llama3:8b", "llama3:8b"], ["qwen2:7b", "qwen2:7b"]], message
        values = shown_values(SynthSettings, SynthSettings(), generate.field_names())
        started = client.predict(
            project.name, "ollama", server.url, "qwen2:7b", "", *values, 6, "", None, api_name="/generate"
        )
        assert started.startswith("Started generate job"), started
        state = studio.wait_job(project.name, "generate")
    assert state.status == "done", state.error
    assert state.result["written"] == 6
    assert "--model=qwen2:7b" in state.cli and "--pairs=6" in state.cli and server.url in state.cli
    lines = [json.loads(x) for x in project.sft_data.read_text().splitlines()]
    assert len(lines) == before + 6 and all("sourdough.md" in r["meta"]["document"] for r in lines[before:])
    assert project.settings().synth.model == "qwen2:7b"  # what the form changed, the job saved (--save)


def test_review_and_the_eval_set_from_the_generate_tab(client, studio, project):
    import ftstudio
    from protocol_servers import OllamaServer

    add_guide(project)  # and generated pairs, each with its source chunks (offline helper, not saved)
    ftstudio.generate(project, ftstudio.GenerateRequest(pairs=6, overrides={"provider": "offline", "model": "rules"}))

    message, summary, table = client.predict(project.name, "3", api_name="/reject_lines")
    assert message == "Rejected 1 line(s)." and table["data"][2][3] == "rejected" and "1 rejected" in summary
    message, *_ = client.predict(project.name, "x-2", api_name="/reject_lines")
    assert "'x-2'" in message  # a bad line list is named, nothing changes
    edited = json.loads(project.sft_data.read_text().splitlines()[2])
    assert edited["meta"]["review"] == "rejected" and edited["meta"]["chunk_ids"]  # provenance kept

    project.update_settings("eval", max_new_tokens=8, passages=2)  # short answers keep the card quick
    refused = client.predict(project.name, "ollama", "", "", "", 3, False, 0.3, 0.3, 2, api_name="/make_eval_set")
    assert "Helper model" in refused and not project.eval_set.exists()
    # The helper shown is this run's: a job whose helper cannot be reached stores nothing (the one save rule).
    before = project.settings().synth
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    started = client.predict(project.name, "ollama", dead, "qwen2:7b", "", 3, False, 0.4, 0.34, 2,
                             api_name="/make_eval_set")  # fmt: skip
    assert started.startswith("Started data job"), started
    failed = studio.wait_job(project.name, "data")
    assert failed.status == "failed" and dead in failed.cli and "--save" in failed.cli
    assert project.settings().synth == before and not project.eval_set.exists()
    with OllamaServer(models=["qwen2:7b"]) as server:
        # 3 questions: held-out share 0.4 → 1, paraphrase share 0.34 → 1, seen 1 (the shares saved in [eval]).
        started = client.predict(project.name, "ollama", server.url, "qwen2:7b", "", 3, False, 0.4, 0.34, 2,
                                 api_name="/make_eval_set")  # fmt: skip
        assert started.startswith("Started data job"), started
        state = studio.wait_job(project.name, "data")
    assert state.status == "done", state.error
    assert "--make-eval=3" in state.cli and state.result["questions"] == 3
    assert project.settings().synth.model == "qwen2:7b"  # the helper that wrote the set is the project's
    assert len(project.eval_set.read_text().splitlines()) == 3
    assert project.settings().eval.held_out_share == 0.4 and state.result["by_kind"]["held_out"] == 1


def test_helper_list_says_clearly_when_ollama_is_not_running(client):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    update, message = client.predict("ollama", f"http://127.0.0.1:{port}", "", api_name="/helper_models")
    assert update["choices"] == [] and "Ollama" in message and "→" in message


def test_train_a_few_steps_then_see_the_loss_and_the_comparison(client, studio, project, tiny_model):
    needs_training()
    # Its own lines first, then some of the example's; a tiny base model; an eval set whose helper is gone.
    add_guide(project)
    add_pairs(project, 8)
    with project.sft_data.open("r+", encoding="utf-8") as data:
        example = data.read()
        data.seek(0)
        data.write(json.dumps({"instruction": "What is lamp one?", "output": "Lamp one is the first light."}) + "\n"
                   + example)  # fmt: skip
    project.update_settings("base_model", model=str(tiny_model("llama")))
    project.update_settings("eval", max_new_tokens=8, passages=2)  # short answers keep the card quick
    make_eval_set(project, 3)
    from ftstudio.train.settings import TrainSettings
    from ftstudio.ui.tabs import train

    result = client.predict(project.name, api_name="/train_refresh")
    summary = next(x for x in result if isinstance(x, str) and "Base model" in x)
    assert str(project.settings().base_model.model) in summary and "examples in `data/sft_data.jsonl`" in summary

    names = train.field_names()
    values = shown_values(TrainSettings, TrainSettings(), names)
    for name, value in {"max_steps": 4, "eval_every": 2, "save_every": 2, "batch_size": 2}.items():
        values[names.index(name)] = value
    # Pre-flight: one example as training sees it, the answer's tokens marked as trained.
    segments, note = client.predict(project.name, 1, *values, api_name="/train_mask")
    trained = "".join(part["token"] for part in segments if part["class_or_confidence"] == "trained")
    assert "Lamp one is the first light." in trained and note.startswith("Line 1:")
    started = client.predict(project.name, None, *values, api_name="/train")
    assert started.startswith("Started train job"), started
    # A second training while the first runs is refused, naming the first.
    refused = client.predict(project.name, None, *values, api_name="/train")
    assert refused.startswith("⚠ Not started") and "train job" in refused
    state = studio.wait_job(project.name, "train", timeout=400)
    assert state.status == "done", state.error
    assert "--max-steps=4" in state.cli

    points = client.predict(project.name, None, api_name="/loss_points")
    assert [p["step"] for p in points if p["series"] == "train"] == [1, 2, 3, 4]
    assert [p["step"] for p in points if p["series"] == "eval"] == [2, 4]
    result = client.predict(project.name, api_name="/train_refresh")
    comparison, card = result[-3], result[-2]
    assert "eval loss **base" in comparison and "| question | reference | base | tuned |" in comparison
    # The helper that wrote the eval set is gone: the run's card holds the answers, no verdicts, and says why.
    assert "**unjudged**" in card and "⚠ no verdicts" in card
    assert client.predict(project.name, api_name="/card_bars") == []  # no accuracy is drawn as a zero


def test_report_card_job_grades_the_run_and_charts_it(client, studio, trained):
    needs_training()
    project = trained
    from protocol_servers import OllamaServer

    with OllamaServer(models=["qwen2:7b"]) as server:
        project.update_settings("synth", base_url=server.url)
        started = client.predict(project.name, None, "", api_name="/make_card")
        assert started.startswith("Started eval job"), started
        state = studio.wait_job(project.name, "eval", timeout=400)
    assert state.status == "done", state.error
    assert state.result["status"] == "graded" and state.result["questions"] == 3
    bars = client.predict(project.name, api_name="/card_bars")
    assert sorted(b["condition"] for b in bars) == ["base", "base + passages", "tuned", "tuned + passages"]
    assert all(b["run"] == state.result["run"] and 0 <= b["accuracy"] <= 100 for b in bars)
    card = client.predict(project.name, api_name="/train_refresh")[-2]
    assert "**graded**" in card and "| held out (" in card


def test_export_a_gguf_and_find_its_download_link(client, studio, trained):
    needs_training()
    project = trained
    from ftstudio.export.settings import ExportSettings
    from ftstudio.ui.tabs import export

    values = shown_values(ExportSettings, ExportSettings(), export.field_names())
    started = client.predict(project.name, None, "", *values, api_name="/export")
    assert started.startswith("Started export job"), started
    state = studio.wait_job(project.name, "export", timeout=400)
    assert state.status == "done", state.error
    gguf = next(f["path"] for f in state.result["files"] if f["path"].endswith(".gguf"))

    table, files, modelfile, command = client.predict(project.name, api_name="/export_files")[-4:]
    shown = {row[0] for row in table["data"]}
    assert Path(gguf).name in shown and any(name.endswith(".Modelfile") for name in shown)
    assert any(Path(f).name == Path(gguf).name and Path(f).stat().st_size == Path(gguf).stat().st_size for f in files)
    assert modelfile.startswith("FROM ") and "PARAMETER stop" in modelfile
    assert command.startswith(f"ollama create {project.name} -f ") and command.endswith(".Modelfile")


def test_chat_streams_tuned_and_base_answers_side_by_side(client, trained):
    needs_training()
    project = trained
    tuned, base, note, cleared = client.predict(project.name, None, 2, "How long does bulk fermentation take?", [], [],
                                                api_name="/chat")  # fmt: skip
    assert cleared == ""
    for history in (tuned, base):
        assert [m["role"] for m in history] == ["user", "assistant"]
    assert note.startswith("Passages from:") and "sourdough.md" in note


def test_ui_warns_when_listening_beyond_this_machine():
    from ftstudio.cli.ui import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")


def test_importing_the_cli_does_not_import_gradio():
    code = "import sys, ftstudio.cli; print('gradio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
