"""A new user's first clicks, in a real browser, from `ftstudio ui --example` (issue 15): every tab works with the
defaults it shows, refuses in the form what cannot run (naming the field), keeps a finished job's summary, and shows
nothing of another project after a switch. Playwright drives Debian's Chromium; the helper is the example's own
offline rule-based one (issue 14), so a first run needs no helper model at all."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from chromium import chromium_page

from ftstudio.example import example_model

pytestmark = [pytest.mark.browser, pytest.mark.slow]

expect = pytest.importorskip("playwright.sync_api").expect

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="module")
def page(example_studio):
    with chromium_page(example_studio.url) as page:
        expect(page.get_by_role("combobox", name="Project")).to_have_value("example")
        yield page


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"ui-example-{name}.png"), full_page=True)


def number_box(page, elem_id: str):
    return page.locator(f"#{elem_id} input, #{elem_id} textarea").first


def test_generate_with_the_defaults_shown_succeeds_and_its_summary_stays(page, example_studio):
    page.get_by_role("tab", name="3 Generate").click()
    # Empty boxes mean the default, and say which.
    pairs = number_box(page, "generate-pairs")
    expect(pairs).to_have_value("")
    expect(pairs).to_have_attribute("placeholder", "empty: 100")
    expect(number_box(page, "generate-max_cost")).to_have_attribute("placeholder", "empty: no limit")
    expect(number_box(page, "delete-line")).to_have_value("")
    # More settings: each checkbox has room for its label, as on the Train tab.
    page.get_by_text("More settings").locator("visible=true").first.click()
    for name in ("Followups", "Judge"):
        box = page.locator("label", has_text=name).locator("visible=true").first.bounding_box()
        assert box and box["width"] >= 150, (name, box)
    # The example comes with the offline helper chosen: the form shows the project's settings, so nothing to save.
    expect(page.locator("#helper-model input")).to_have_value("rules")
    expect(page.locator("#generate-preview textarea, #generate-preview input").first).to_have_value(
        "ftstudio generate example --root " + str(example_studio.root)
    )
    before = len((example_studio.root / "projects/example/data/sft_data.jsonl").read_text().splitlines())
    page.get_by_role("button", name="Generate", exact=True).click()
    state = example_studio.wait_job("example", "generate", timeout=180)
    # 100 pairs are more than the example's few chunks give: the run writes what they hold and says why it stopped.
    assert state.status in ("done", "partial"), state.error
    written = state.result["written"]
    assert written > 0
    status = page.locator("#generate-status")
    expect(status).to_contain_text(re.compile(f"[Ww]rote {written} of 100 pairs"))
    expect(status).to_contain_text("dropped: ")
    if state.status == "partial":  # partly done, said plainly, with what gives more in this tab's own words
        expect(status).to_contain_text("Partly done")
        expect(status).to_contain_text("stopped because the documents gave no more new pairs")
        expect(status).to_contain_text("fewer Pairs")
        expect(status).not_to_contain_text("--pairs")
    expect(status).to_contain_text("cost $0.0000")
    expect(page.locator("#data-summary")).to_contain_text(f"{before + written} examples")
    page.wait_for_timeout(2500)  # two timer ticks later, the summary is still there
    expect(status).to_contain_text(re.compile(f"[Ww]rote {written} of 100 pairs"))
    shot(page, "generate")


def test_generate_without_a_helper_model_is_refused_in_the_form(page, example_studio):
    page.get_by_role("tab", name="3 Generate").click()
    model = page.locator("#helper-model input")
    model.fill("")
    model.press("Tab")
    # An emptied box stays empty (none chosen) when the user looks at another tab and comes back.
    page.get_by_role("tab", name="4 Train").click()
    page.get_by_role("tab", name="3 Generate").click()
    page.wait_for_timeout(1500)
    expect(model).to_have_value("")
    page.get_by_role("button", name="Generate", exact=True).click()
    refusal = page.get_by_text("model: no helper model chosen")
    expect(refusal).to_be_visible()
    expect(refusal).to_contain_text("Helper model")  # the hint names this tab's field, not the CLI's --model
    expect(refusal).not_to_contain_text("--model")
    jobs = list((example_studio.root / "projects/example/jobs").glob("*-generate-*.json"))
    assert len(jobs) == 1  # no second job was started


def test_generate_with_the_defaults_against_ollama_succeeds(page, example_studio, helper):
    """The same first click with an Ollama helper (the test's Ollama protocol server, reached through OLLAMA_HOST):
    choosing the provider offers its models, and Generate with every other box at its default succeeds."""
    page.get_by_role("tab", name="3 Generate").click()
    page.get_by_role("combobox", name="Provider").click()
    page.get_by_role("option", name="ollama", exact=True).click()
    expect(page.locator("#helper-model input")).to_have_value("llama3:8b")
    expect(page.locator("#helper-list-note")).to_contain_text("chose llama3:8b")
    expect(number_box(page, "generate-pairs")).to_have_value("")
    expect(page.locator("#generate-preview textarea, #generate-preview input").first).to_have_value(
        "ftstudio generate example --provider=ollama --model=llama3:8b --save --root " + str(example_studio.root)
    )
    asked = len(helper.chat_requests())
    jobs = example_studio.root / "projects/example/jobs"
    earlier = len(list(jobs.glob("*-generate-*.json")))
    page.get_by_role("button", name="Generate", exact=True).click()
    expect(page.get_by_text("Started generate job")).to_be_visible()
    assert len(list(jobs.glob("*-generate-*.json"))) == earlier + 1
    state = example_studio.wait_job("example", "generate", timeout=300)
    assert "--provider=ollama" in state.cli and state.status in ("done", "partial"), state.error
    assert len(helper.chat_requests()) > asked  # the Ollama server wrote them
    status = page.locator("#generate-status")
    expect(status).to_contain_text(f"Wrote {state.result['written']} of {state.result['target']} pairs"
                                   if state.status == "done" else "Partly done")  # fmt: skip
    data = example_studio.root / "projects/example/data/sft_data.jsonl"
    expect(page.locator("#data-summary")).to_contain_text(f"{len(data.read_text().splitlines())} examples")
    # What the form changed is the project's now, stored by the job once the helper answered.
    toml = (example_studio.root / "projects/example/project.toml").read_text()
    assert 'provider = "ollama"' in toml and 'model = "llama3:8b"' in toml
    shot(page, "generate-ollama")


def test_own_jsonl_is_appended_or_replaced_as_chosen(page, example_studio, tmp_path):
    page.get_by_role("tab", name="3 Generate").click()
    data = example_studio.root / "projects/example/data/sft_data.jsonl"
    before = len(data.read_text().splitlines())
    mine = tmp_path / "mine.jsonl"
    mine.write_text("".join(json.dumps({"instruction": f"Question {i}?", "output": f"Answer number {i}."}) + "\n"
                            for i in range(3)))  # fmt: skip
    page.locator("#import-mode").get_by_label("append").check()
    page.locator("#import-file input[type=file]").set_input_files(str(mine))
    expect(page.locator("#data-summary")).to_contain_text(f"{before + 3} examples")
    page.locator("#import-mode").get_by_label("replace").check()
    page.locator("#import-file input[type=file]").set_input_files(str(mine))
    expect(page.locator("#data-summary")).to_contain_text("3 examples in")
    assert len(data.read_text().splitlines()) == 3
    backups = list(data.parent.glob("sft_data.*.bak.jsonl"))
    assert len(backups) == 1 and len(backups[0].read_text().splitlines()) == before + 3
    # Editing a cell keeps the line's meta (here: where it was imported from) and counts it as accepted.
    page.locator("#data-table [role=gridcell]", has_text="Answer number 0.").first.dblclick()
    editor = page.locator("#data-table").get_by_label("Edit cell")
    editor.fill("Answer number zero.")
    editor.press("Enter")
    page.get_by_role("button", name="Save edits").click()
    expect(page.get_by_text("Saved 1 edited lines.")).to_be_visible()
    first = json.loads(data.read_text().splitlines()[0])
    assert first["output"] == "Answer number zero." and first["meta"]["imported_from"]
    assert first["meta"]["review"] == "accepted"


def test_train_shows_what_is_set_and_empty_boxes_name_their_default(page, example_studio):
    page.get_by_role("tab", name="4 Train").click()
    model = example_model()  # SmolLM2's GGUF from its package
    what = page.locator("#train-what")
    expect(what).to_contain_text(str(model))
    # Opening the tab reads the data as it is now: the 3 examples the replace left, not what the page first saw.
    expect(what).to_contain_text("Data: 3 examples in data/sft_data.jsonl")
    page.get_by_text("Pre-flight").click()
    line = page.get_by_label("Data line")
    expect(line).to_have_value("")
    expect(line).to_have_attribute("placeholder", "empty: the first example")
    shot(page, "train")


def test_switching_project_leaves_nothing_of_the_last_one(page, example_studio):
    page.get_by_role("tab", name="1 Knowledge").click()
    search = page.get_by_label("Search the chunks")
    search.fill("hooch starter")
    search.press("Enter")
    expect(page.locator("#knowledge-hits")).to_contain_text("sourdough.md")
    page.get_by_label("New project").fill("second")
    page.get_by_role("button", name="Create project").click()
    expect(page.get_by_role("combobox", name="Project")).to_have_value("second")
    expect(page.locator("#knowledge-hits")).not_to_contain_text("sourdough.md")
    expect(page.locator("#knowledge-docs")).not_to_contain_text("sourdough.md")
    page.get_by_role("tab", name="3 Generate").click()
    expect(page.locator("#data-summary")).to_contain_text("No training data yet")
    assert "Traceback" not in (example_studio.root / "ui.log").read_text()  # the switch raised nothing
    shot(page, "switched")
