"""One core, three faces: for each stage, the same request given to the Python API, to the studio and to the CLI
gives the same result.

The studio's handlers are called as the page calls them (the app built in-process, `demo.fns`, with the values its
widgets hold). For a long stage the handler starts a background job; the test checks that the job ran the request
the API was given, then types the job's own command line (`state.cli`) as a user would. Where the studio calls
the core itself (model checks, chat, data edits), its answer is compared as the page shows it. Stages that write
start each face from the same project state (three projects made the same way, or the state put back).

Only what must agree is compared: never run ids, timestamps, speeds or the machine's free memory.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

import ftstudio
from ftstudio.jobs import JobState, request_line
from ftstudio.project import Project
from ftstudio.requests import Request

EXAMPLES = resources.files("ftstudio") / "examples"


# -- the faces --------------------------------------------------------------------------------------------------------


def cli(*args: object, root: Path, ok: tuple[int, ...] = (0,)) -> dict:
    """`ftstudio ARGS --root ROOT --json` in a subprocess, as a user types it: its JSON document."""
    argv = [str(a) for a in args]
    if "--root" not in argv:
        argv += ["--root", str(root)]
    proc = subprocess.run([sys.executable, "-m", "ftstudio", *argv, "--json"], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "NO_COLOR": "1"})  # fmt: skip
    assert proc.returncode in ok, f"exit {proc.returncode}: {proc.stderr[-3000:]}"
    return json.loads(proc.stdout.splitlines()[-1])


def typed(state: JobState, project: str | None = None) -> list[str]:
    """The job's own command line (`state.cli`) as argv, optionally for another project made the same way."""
    argv = shlex.split(state.cli)[1:]
    assert argv[1] == state.project
    if project is not None:
        argv[1] = project
    return argv


def from_page(root: Path, project: str, message: str) -> JobState:
    """The job a studio handler started (its reply names it), once it ended."""
    from ftstudio.jobs import registry

    assert message.startswith("Started "), message
    state = registry(root).wait(project, message.split("`")[1], timeout=600)
    assert state.status == "done", state.error
    return state


def ran(state: JobState, request: Request, root: Path) -> list[str]:
    """What the job ran, checked to be `request` (the same options, in any order) on the job's project."""
    expected = shlex.split(request_line(state.project, request, root))[1:]
    assert sorted(typed(state)) == sorted(expected)
    return typed(state)


def studio(root: Path) -> dict:
    """The studio's handlers by their api_name, from the page built for `root` (as `ftstudio ui` builds it): called
    with the values the page's widgets hold."""
    from ftstudio.ui.app import build_app

    demo = build_app(root)
    return {f.api_name: f.fn for f in demo.fns.values() if f.api_name}


# -- what to compare ----------------------------------------------------------------------------------------------


def lines(project: Project, volatile: tuple[str, ...] = ()) -> list[dict]:
    """The project's data lines, without the meta keys that carry a time or a run id."""
    found = []
    for raw in project.sft_data.read_text(encoding="utf-8").splitlines():
        record = json.loads(raw)
        if "meta" in record:
            record["meta"] = {k: v for k, v in record["meta"].items() if k not in volatile}
        found.append(record)
    return found


def without(doc: dict, *keys: str) -> dict:
    return {k: v for k, v in doc.items() if k not in keys}


def plain(doc: object) -> dict:
    """A result as the CLI prints it with --json (tuples as lists, paths as text)."""
    return json.loads(json.dumps(doc, default=str))


def example_data(project: Project, first: int | None = None) -> None:
    project.data_dir.mkdir(parents=True, exist_ok=True)
    data = (EXAMPLES / "sft_data.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    project.sft_data.write_text("".join(data[:first]), encoding="utf-8")


# -- base model checks --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_check_model_gives_one_verdict_on_every_face(workspace, tiny_model):
    from ftstudio.ui.tabs.basemodel import render_check

    model = str(tiny_model("llama"))
    project = Project.create("demo", workspace)
    # Beyond the tiny model's 2048-token context, a batch and rank of its own: every face must plan with these.
    project.update_settings("train", max_seq_length=4096, batch_size=2, rank=8)

    api = ftstudio.check_model(project, model=model)
    assert api.verdict == "warn" and [f.check for f in api.findings if f.level == "warn"] == ["context"]
    shown = cli("models", "check", model, "--project", "demo", root=workspace)
    assert without(shown, "hardware") == without(plain(api.to_dict()), "hardware")
    assert (shown["seq_len"], shown["batch"], shown["estimates"]["lora"]["lora_rank"]) == (4096, 2, 8)

    page = studio(workspace)["check_model"]("demo", model, False)

    def verdict_text(text: str) -> str:  # the last line names this machine's free memory, which moves
        return text.rsplit("\nThis machine:", 1)[0]

    assert verdict_text(page) == verdict_text(render_check(api))

    # An override plans for this check only, on both faces; with no project, a new project's settings.
    short = ftstudio.check_model(project, model=model, max_seq_length=512)
    assert short.verdict == "ok"
    shown = cli("models", "check", model, "--project", "demo", "--seq-len", 512, root=workspace)
    assert without(shown, "hardware") == without(plain(short.to_dict()), "hardware")
    fresh = ftstudio.check_model(None, model=model)
    shown = cli("models", "check", model, root=workspace)
    assert without(shown, "hardware") == without(plain(fresh.to_dict()), "hardware")
    assert shown["seq_len"] == ftstudio.ProjectSettings().train.max_seq_length
    assert project.settings().train.max_seq_length == 4096  # checks never save

    # Saving the choice (`models use`, the studio's Use button) plans as the check does: the project's rank too.
    shown = cli("models", "use", "demo", model, root=workspace)
    assert without(shown, "hardware", "model", "project") == without(plain(api.to_dict()), "hardware", "model")
    assert shown["estimates"]["lora"]["lora_rank"] == 8
    page = studio(workspace)["save_base_model"]("demo", model, False)[0]
    assert verdict_text(page.split("\n\n", 1)[1]) == verdict_text(render_check(api))


@pytest.mark.slow
def test_the_catalog_plans_with_the_project_on_every_face(workspace):
    from ftstudio.basemodels.checks import catalog_fits

    project = Project.create("demo", workspace)
    project.update_settings("train", max_seq_length=4096, batch_size=2, rank=8)
    plan = {"seq_len": 4096, "batch": 2, "method": "lora", "lora_rank": 8}
    shown = cli("models", "--project", "demo", root=workspace)
    assert shown["plan"] == plan
    # The memory each row shows is the estimate for that plan (never the machine's free memory, which moves).
    estimates = {e.id: r.estimates[r.info["effective_method"]].to_dict()["total_gib"] for e, r in catalog_fits(**plan)}
    assert {m["id"]: m["memory_gib"] for m in shown["models"]} == estimates
    fresh = cli("models", root=workspace)["plan"]
    new = ftstudio.ProjectSettings().train
    assert fresh == {"seq_len": new.max_seq_length, "batch": new.batch_size, "method": new.method,
                     "lora_rank": new.rank}  # fmt: skip
    assert cli("models", "--project", "demo", "--seq-len", 512, root=workspace)["plan"] == {**plan, "seq_len": 512}

    # The studio's catalog: the same models; a verdict that does not hang on free memory (an error: the machine's
    # whole memory, the architecture) is the same.
    rows = studio(workspace)["catalog"]("demo")
    assert {r[0] for r in rows} == set(estimates)
    errors = {m["id"] for m in shown["models"] if m["verdict"] == "error"}
    assert {r[0] for r in rows if r[4] == "error"} == errors


# -- generate -------------------------------------------------------------------------------------------------------


def test_generate_writes_the_same_pairs_on_every_face(workspace, tmp_path):
    from ftstudio.synth.settings import SynthSettings
    from ftstudio.ui.common import shown_values
    from ftstudio.ui.tabs import generate

    doc = tmp_path / "sourdough.md"
    doc.write_text((EXAMPLES / "sourdough.md").read_text(encoding="utf-8"), encoding="utf-8")
    projects = {}
    for name in ("api", "page", "cli"):  # three projects made the same way
        projects[name] = Project.create(name, workspace)
        ftstudio.ingest(projects[name], paths=[doc])
    # The offline helper ("rules"), one request at a time so the lines come in one order. Saved: the studio's form
    # stores what it changed.
    changes = {"provider": "offline", "model": "rules", "concurrency": 1, "seed": 7}
    request = ftstudio.GenerateRequest(pairs=6, overrides=changes, save=True)
    api = plain(ftstudio.generate(projects["api"], request).to_dict())

    names = generate.field_names()
    values = dict(zip(names, shown_values(SynthSettings, projects["page"].settings().synth, names), strict=True))
    values.update(concurrency=1, seed=7)
    message = studio(workspace)["generate"]("page", "offline", "", "rules", "", *values.values(), 6, "", None)
    state = from_page(workspace, "page", message)
    ran(state, request, workspace)  # the page asked for this very request
    typed_cli = cli(*typed(state, "cli"), root=workspace)

    volatile = ("run", "seconds", "data")
    assert api["status"] == "done" and api["written"] == 6
    assert without(state.result, *volatile) == without(api, *volatile)
    assert without(typed_cli, *volatile) == without(api, *volatile)
    meta_volatile = ("run", "created_at")
    assert lines(projects["page"], meta_volatile) == lines(projects["api"], meta_volatile)
    assert lines(projects["cli"], meta_volatile) == lines(projects["api"], meta_volatile)
    synth = {name: p.settings().synth for name, p in projects.items()}
    assert synth["api"].model == "rules" and synth["api"] == synth["page"] == synth["cli"]


# -- train ------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_train_gives_the_same_run_on_every_face(workspace, tiny_model):
    pytest.importorskip("ftstudio.train.runner")
    from ftstudio.train.runs import load_run
    from ftstudio.train.settings import TrainSettings
    from ftstudio.ui.common import shown_values
    from ftstudio.ui.tabs import train

    projects = {}
    for name in ("api", "page", "cli"):
        projects[name] = Project.create(name, workspace)
        projects[name].update_settings("base_model", model=str(tiny_model("llama")))
        example_data(projects[name])
    changes = {"max_steps": 2, "seed": 7, "compare_answers": 1, "max_new_tokens": 8}
    request = ftstudio.TrainRequest(overrides=changes, save=True)  # saved: the studio's form stores what it changed
    api = plain(ftstudio.train(projects["api"], request).to_dict())

    names = train.field_names()
    values = dict(zip(names, shown_values(TrainSettings, projects["page"].settings().train, names), strict=True))
    values.update(changes)
    state = from_page(workspace, "page", studio(workspace)["train"]("page", None, *values.values()))
    ran(state, request, workspace)
    typed_cli = cli(*typed(state, "cli"), root=workspace)

    results = {"api": api, "page": state.result, "cli": typed_cli}
    for name, result in results.items():
        assert result["status"] == "completed" and result["steps"] == result["total_steps"] == 2, name
        assert result["final_train_loss"] == pytest.approx(api["final_train_loss"], rel=1e-4), name
        assert result["final_eval_loss"] == pytest.approx(api["final_eval_loss"], rel=1e-4), name
        assert result["eval"]["base_eval_loss"] == pytest.approx(api["eval"]["base_eval_loss"], rel=1e-4), name
        assert result["eval"]["tuned_eval_loss"] == pytest.approx(api["eval"]["tuned_eval_loss"], rel=1e-4), name
        assert (result["backend"], result["warnings"]) == (api["backend"], api["warnings"]), name
        assert result["eval"]["answers"] == api["eval"]["answers"], name  # greedy: the same words

    def metrics(name: str) -> list[dict]:
        run = load_run(projects[name], results[name]["run_id"])
        assert run.info["settings"] == load_run(projects["api"], api["run_id"]).info["settings"]
        return [without(m, "tokens_per_second") for m in run.metrics()]  # the rest must agree

    expected = metrics("api")
    assert [m["step"] for m in expected if "loss" in m] == [1, 2]
    for name in ("page", "cli"):
        found = metrics(name)
        assert [sorted(m) for m in found] == [sorted(m) for m in expected], name
        for got, want in zip(found, expected, strict=True):
            for key, value in want.items():
                assert got[key] == (pytest.approx(value, rel=1e-4) if isinstance(value, float) else value), (name, key)
    saved = {name: p.settings().train for name, p in projects.items()}
    assert saved["api"].max_steps == 2 and saved["api"] == saved["page"] == saved["cli"]


# -- one trained run for the stages after training ------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model):
    """The example project (offline helper) on a tiny model (only a model that trains is needed here, set
    explicitly), trained 2 steps once, with a frozen eval set of 4."""
    pytest.importorskip("ftstudio.train.runner")
    root = tmp_path_factory.mktemp("faces")
    project = ftstudio.example_project(root)
    project.update_settings("base_model", model=str(tiny_model("llama")))
    project.eval_set.unlink()  # the example's own set: this run's card comes from the helper's set of 4 below
    run = ftstudio.train(project, max_steps=2, compare_answers=1)
    assert run.status == "completed"
    ftstudio.make_eval_set(project, make_eval=4)
    return root, project, run.run_id


@pytest.mark.slow
def test_report_card_grades_the_run_the_same_way_on_every_face(trained):
    from ftstudio.synth.judge import CACHE_FILE
    from ftstudio.ui.tabs.train import card_view

    root, project, run_id = trained
    cache = project.dir / CACHE_FILE

    def fresh() -> None:  # each face starts with no remembered verdicts, as the first did
        cache.unlink(missing_ok=True)

    # What the Train tab's "Make the report card" asks for, its judge box left empty (the project's helper).
    request = ftstudio.EvaluateRequest(run=run_id, overrides={"judge_model": None})
    fresh()
    api = plain(ftstudio.report_card(project, request).to_dict())
    shown = {"api": card_view(project, run_id)}
    fresh()
    state = from_page(root, project.name, studio(root)["make_card"](project.name, run_id, ""))
    shown["page"] = card_view(project, run_id)
    fresh()
    typed_cli = cli(*ran(state, request, root), root=root)
    shown["cli"] = card_view(project, run_id)

    assert api["run"] == run_id and api["questions"] == 4 and api["judge"]
    assert state.result == api and typed_cli == api
    assert shown["page"] == shown["api"] and shown["cli"] == shown["api"]
    # evaluate() reads what the card saved in the run's eval.json.
    assert plain(ftstudio.evaluate(project, run=run_id).report["card"]) == api


# -- export -----------------------------------------------------------------------------------------------------------


def gguf_content(path: Path) -> dict:
    """A GGUF file's metadata and tensors (name, type, shape, a hash of the bytes) as read back by gguf's reader."""
    from gguf import GGUFReader

    reader = GGUFReader(path)
    fields = {}
    for name, field in reader.fields.items():
        if name.startswith("GGUF."):
            continue
        fields[name] = [bytes(field.parts[i]).hex() for i in field.data]
    tensors = [(t.name, int(t.tensor_type), [int(n) for n in t.shape], hashlib.sha256(bytes(t.data)).hexdigest())
               for t in reader.tensors]  # fmt: skip
    return {"fields": fields, "tensors": tensors}


@pytest.mark.slow
def test_export_writes_the_same_gguf_on_every_face(trained):
    pytest.importorskip("gguf")
    root, project, run_id = trained
    from ftstudio.export.settings import ExportSettings
    from ftstudio.ui.common import shown_values
    from ftstudio.ui.tabs import export

    request = ftstudio.ExportRequest(run=run_id, overrides={"quant": "f16"}, save=True)  # saved, as the form does
    results, files, saved = {}, {}, {}
    before = project.settings_path.read_text(encoding="utf-8")

    def written(name: str, result: dict) -> None:
        """Read what a face wrote before the next face writes the same file names; then undo what it saved."""
        (gguf,) = [Path(f["path"]) for f in result["files"] if f["path"].endswith(".gguf")]
        modelfile = next(Path(f["path"]) for f in result["files"] if f["path"].endswith(".Modelfile"))
        results[name], saved[name] = result, project.settings().export
        files[name] = {"gguf": gguf_content(gguf), "modelfile": modelfile.read_text(encoding="utf-8")}
        project.settings_path.write_text(before, encoding="utf-8")

    written("api", plain(ftstudio.export(project, request).to_dict()))
    names = export.field_names()
    values = dict(zip(names, shown_values(ExportSettings, project.settings().export, names), strict=True))
    values.update(quant="f16")
    state = from_page(root, project.name, studio(root)["export"](project.name, run_id, "", *values.values()))
    written("page", state.result)
    written("cli", cli(*ran(state, request, root), root=root))

    assert results["api"]["format"] == "gguf" and files["api"]["gguf"]["tensors"]
    assert saved["api"].quant == "f16"
    for name in ("page", "cli"):
        assert results[name] == results["api"], name
        assert files[name] == files["api"], name
        assert saved[name] == saved["api"], name


# -- chat -------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_chat_answers_the_same_on_every_face(trained):
    root, project, run_id = trained
    question = "What is hooch and what does it tell you about the starter?"
    request = ftstudio.ChatRequest(prompt=question, run=run_id, passages=2, compare=True)
    api = ftstudio.chat(project, request)
    assert api.answer and api.base_answer is not None and len(api.sources) == 2

    shown = cli("chat", project.name, question, "--run", run_id, "--passages", 2, "--compare", root=root)
    assert shown == plain(api.to_dict())

    # The studio's Chat tab: the tuned answer and, beside it, the base model's, with the passages named.
    *_, last = studio(root)["chat"](project.name, run_id, 2, question, [], [])
    tuned, base, note, box = last
    assert tuned[-1]["content"] == api.answer and base[-1]["content"] == api.base_answer
    assert note == "Passages from: " + "; ".join(api.sources) and box == ""
    assert [t["content"] for t in tuned if t["role"] == "user"] == [question]


# -- data: import, edit, delete --------------------------------------------------------------------------------------


def test_data_import_edit_and_delete_agree_on_every_face(workspace, tmp_path):
    from ftstudio.errors import error_document
    from ftstudio.ui.tabs.generate import data_rows

    projects = {}
    for name in ("api", "cli", "page"):
        projects[name] = Project.create(name, workspace)
        example_data(projects[name], first=4)
    page = studio(workspace)
    mixed = tmp_path / "my pairs.jsonl"  # a space in the name: provenance names the user's file on every face
    mixed.write_text(
        json.dumps({"conversations": [{"from": "human", "value": "Q one?"}, {"from": "gpt", "value": "A one."}]})
        + "\nnot json\n"
        + json.dumps({"instruction": "Q two?", "input": "", "output": "A two."})
        + "\n",
        encoding="utf-8",
    )
    clean = tmp_path / "clean.jsonl"
    clean.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"Q {i}?"},
                                                      {"role": "assistant", "content": f"A {i}."}]}) + "\n"
                             for i in range(3)), encoding="utf-8")  # fmt: skip
    volatile = ("edited",)

    def same_data() -> list[dict]:
        found = lines(projects["api"], volatile)
        assert lines(projects["cli"], volatile) == found
        assert lines(projects["page"], volatile) == found
        return found

    # Append: the good lines after the data, the bad one reported.
    api = plain(ftstudio.import_data(projects["api"], mixed, "append").to_dict())
    shown = cli("data", "cli", "--import", mixed, root=workspace, ok=(1,))
    note, *_ = page["upload_data"]("page", "append", str(mixed))
    assert without(shown, "source", "data") == without(api, "source", "data")
    assert api["imported"] == 2 and not api["backup"] and [b["line"] for b in api["bad_lines"]] == [2]
    assert note.startswith("Added 2 examples.") and "1 bad lines" in note
    data = same_data()
    assert len(data) == 6 and data[4]["meta"] == {"imported_from": "my pairs.jsonl"}

    # Replace: the file instead of the data, the data before it kept in a backup.
    before = projects["api"].sft_data.read_text(encoding="utf-8")
    api = plain(ftstudio.import_data(projects["api"], clean, mode="replace").to_dict())
    shown = cli("data", "cli", "--import", clean, "--replace", root=workspace)
    note, *_ = page["upload_data"]("page", "replace", str(clean))
    assert without(shown, "source", "backup", "data") == without(api, "source", "backup", "data")
    assert note.startswith("Replaced the data with 3 examples.")
    assert [r["meta"] for r in same_data()] == [{"imported_from": "clean.jsonl"}] * 3
    for project in projects.values():
        (backup,) = project.data_dir.glob("sft_data.*.bak.jsonl")
        assert backup.read_text(encoding="utf-8") == before

    # Edit line 2: question and answer replaced, its provenance kept, counted as accepted.
    api = ftstudio.edit_data(projects["api"], 2, question="New question?", answer="New answer.")
    cli("data", "cli", "--edit", 2, "--question", "New question?", "--answer", "New answer.", root=workspace)
    rows = data_rows(projects["page"])
    rows[1][1:3] = ["New question?", "New answer."]
    note, *_ = page["save_data_edits"]("page", rows)
    assert note == "Saved 1 edited lines."
    edited = same_data()[1]
    assert (edited["instruction"], edited["output"]) == ("New question?", "New answer.")
    assert edited["meta"] == {"imported_from": "clean.jsonl", "review": "accepted"}
    assert api.line == 2 and api.record == json.loads(projects["api"].sft_data.read_text().splitlines()[1])
    assert all(json.loads(p.sft_data.read_text().splitlines()[1])["meta"]["edited"] for p in projects.values())

    # Review: line 1 rejected (never trained on), then accepted again: the same counts and the same files.
    api = ftstudio.review_data(projects["api"], "1", "rejected")
    shown = cli("data", "cli", "--reject", 1, root=workspace)
    note, *_ = page["reject_lines"]("page", "1")
    assert shown == api.to_dict() == {"changed": 1, "review": {**api.review, "rejected": 1}}
    assert note == "Rejected 1 line(s)." and same_data()[0]["meta"]["review"] == "rejected"
    api = ftstudio.review_data(projects["api"], [1], "accepted")
    cli("data", "cli", "--accept", 1, root=workspace)
    page["accept_lines"]("page", "1")
    assert api.review["rejected"] == 0 and same_data()[0]["meta"]["review"] == "accepted"

    # Delete line 1: the others kept byte for byte.
    api = plain(ftstudio.delete_data(projects["api"], [1]).to_dict())
    shown = cli("data", "cli", "--delete", 1, root=workspace)
    note, *_ = page["delete_data_line"]("page", 1)
    assert without(shown, "data") == without(api, "data") and note == "Deleted line 1."
    assert [r["instruction"] for r in same_data()] == ["New question?", "Q 2?"]

    # Refused with the same error on the API and the CLI, naming the line, and nothing changed.
    kept = same_data()
    refusals = [
        (lambda p: ftstudio.import_data(p, mixed, "replace"), ("--import", mixed, "--replace"), "line 2: "),
        (lambda p: ftstudio.edit_data(p, 1, question=" ", answer="A."),
         ("--edit", 1, "--question", " ", "--answer", "A."), "line 1: "),
        (lambda p: ftstudio.delete_data(p, [5]), ("--delete", 5), "has no line 5"),
        (lambda p: ftstudio.delete_data(p, "2-x"), ("--delete", "2-x"), "'2-x'"),
    ]  # fmt: skip
    for call, args, named in refusals:
        with pytest.raises(ftstudio.BadInput) as refused:
            call(projects["api"])
        assert named in refused.value.message
        shown = json.dumps(cli("data", "cli", *args, root=workspace, ok=(2,)))
        assert json.loads(shown.replace(str(projects["cli"].dir), str(projects["api"].dir))) == error_document(
            refused.value
        )
    assert same_data() == kept
