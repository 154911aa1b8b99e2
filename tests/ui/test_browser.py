"""End to end in a real browser: Playwright driving Debian's Chromium against `ftstudio ui` on 127.0.0.1.

One walk through the whole product, as a first-time user would click it: create a project, upload a document and
find it by search, pick a tiny local model, generate data with a local helper server, train a few steps and watch
the loss plot (every eval point, whole steps, elapsed and ETA), export a merged model (one archive) and a GGUF (its
verification as a table) and download them, and chat (text shown as text). Along the way, controls that cannot act
are disabled (Remove document with nothing picked, Start training during a run, Quant and Verify for a merged
export) and no tab shows a Stop button without a job. A screenshot of each tab is kept in test-artifacts/.
"""

from __future__ import annotations

import json
import re
import shutil
import time
import zipfile
from pathlib import Path

import pytest
from chromium import chromium_page

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def needs_training() -> None:
    """Training, export and chat need the train stage (runner, runs, chat); skip cleanly where it is absent."""
    pytest.importorskip("ftstudio.train.runner")
    pytest.importorskip("ftstudio.train.chat")


expect = pytest.importorskip("playwright.sync_api").expect

EXAMPLE_DOC = Path(__file__).resolve().parents[2] / "src" / "ftstudio" / "examples" / "sourdough.md"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="module")
def browser_studio(studio):
    return studio


@pytest.fixture(scope="module")
def page(browser_studio):
    with chromium_page(browser_studio.url) as page:
        yield page


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"ui-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def reload_and_settle(page) -> None:
    """Reload, and wait until the project is restored and every load it set off has answered (Gradio marks a block
    `pending` until then): on a busy machine a late load would put back the saved settings over a choice made
    before it answered, as it would for a user who picks one that fast."""
    page.reload()
    expect(page.get_by_role("combobox", name="Project")).to_have_value("sourdough")
    expect(page.locator(".block.pending")).to_have_count(0, timeout=120_000)


def no_stop_shown(page) -> None:
    """With no job running, the open tab shows no Stop button (not even a pale, disabled one)."""
    expect(page.get_by_role("button", name="Stop", exact=True)).to_have_count(0)


def choose(page, label: str, option: str) -> None:
    """Pick `option` in the dropdown labelled `label`, as a user does: open it, click the choice."""
    page.get_by_role("combobox", name=label).click()
    page.get_by_role("option", name=option, exact=True).click()


POINTS = "#train-plot g.mark-symbol.role-mark path"  # the plotted points, not the legend's symbols


def plot_marks(page) -> list[str]:
    """The loss plot's points as the chart draws them (Vega's SVG marks, one aria-label per point)."""
    return page.locator(POINTS).evaluate_all("els => els.map(e => e.getAttribute('aria-label') || '')")


def x_tick_labels(page) -> list[str]:
    """The step axis's tick labels as drawn (the x axis is the plot's first axis)."""
    axis = page.locator("#train-plot g.role-axis").filter(has=page.locator("text", has_text="step")).first
    texts = axis.locator("g.role-axis-label text").evaluate_all(
        "els => els.filter(e => getComputedStyle(e).opacity !== '0' && e.getAttribute('opacity') !== '0')"
        ".map(e => e.textContent)"
    )
    return texts


def test_create_a_project(page, browser_studio):
    page.get_by_label("New project").fill("sourdough")
    page.get_by_role("button", name="Create project").click()
    page.get_by_text("Created project").wait_for()
    assert (browser_studio.root / "projects" / "sourdough" / "project.toml").is_file()
    no_stop_shown(page)


def test_upload_a_document_and_find_it_by_search(page, browser_studio, tmp_path):
    open_tab(page, "1 Knowledge")
    doc = tmp_path / "sourdough guide.md"
    shutil.copyfile(EXAMPLE_DOC, doc)
    page.locator("#knowledge-files input[type=file]").set_input_files(str(doc))
    page.get_by_role("button", name="Ingest", exact=True).click()
    page.locator("#ingest-status").get_by_text("done").wait_for(timeout=180_000)
    expect(page.locator("#knowledge-docs")).to_contain_text("sourdough_guide.md")
    search = page.get_by_label("Search the chunks")
    search.fill("hooch starter")
    search.press("Enter")
    expect(page.locator("#knowledge-hits")).to_contain_text("sourdough_guide.md")
    expect(page.locator("#knowledge-hits")).to_contain_text("hooch")
    # Remove document cannot act until a document is picked.
    remove = page.get_by_role("button", name="Remove document")
    expect(remove).to_be_disabled()
    choose(page, "Document", "uploads/sourdough_guide.md")
    expect(remove).to_be_enabled()
    no_stop_shown(page)
    shot(page, "1-knowledge")


def test_pick_a_tiny_local_model(page, browser_studio, tiny_model):
    open_tab(page, "2 Base model")
    folder = tiny_model("llama")
    page.locator("#base-model-id").get_by_role("textbox").fill(str(folder))
    page.get_by_role("button", name="Use this model").click()
    page.get_by_text("Saved: the base model").wait_for()
    shot(page, "2-base-model")


def test_generate_with_a_local_helper_server(page, browser_studio):
    from protocol_servers import OllamaServer

    open_tab(page, "3 Generate")
    with OllamaServer(models=["llama3:8b"]) as server:
        page.locator("#helper-base-url").get_by_role("textbox").fill(server.url)
        page.get_by_role("button", name="Refresh list").click()
        expect(page.locator("#helper-list-note")).to_contain_text("1 models from ollama")
        pairs = page.locator("#generate-pairs input, #generate-pairs textarea").first
        pairs.fill("6")
        pairs.press("Tab")
        expect(page.locator("#generate-preview textarea, #generate-preview input").first).to_have_value(
            re.compile(r"--pairs=6\b")
        )
        page.get_by_role("button", name="Generate", exact=True).click()
        expect(page.locator("#generate-status")).to_contain_text("done", timeout=180_000)
    expect(page.locator("#data-summary")).to_contain_text("6 examples")
    no_stop_shown(page)
    shot(page, "3-generate")


def test_train_a_few_steps_and_see_the_loss_plot_update(page, browser_studio):
    needs_training()
    open_tab(page, "4 Train")
    no_stop_shown(page)
    # More settings: each checkbox has room for its label (not a 20-px sliver).
    page.get_by_text("More settings").locator("visible=true").first.click()
    for name in ("Gradient checkpointing", "Packing"):
        box = page.locator("label", has_text=name).locator("visible=true").first.bounding_box()
        assert box and box["width"] >= 150, (name, box)
    # Max steps may be empty (a text box naming its default), Batch size is a number box; Eval every is folded.
    for box, value in ((page.get_by_role("textbox", name=re.compile(r"^Max steps")), "16"),
                       (page.get_by_label("Batch size", exact=True), "2"),
                       (page.get_by_label("Eval every", exact=True), "5")):  # fmt: skip
        box.fill(value)
        box.press("Tab")
    expect(page.locator("#train-preview textarea, #train-preview input").first).to_have_value(
        re.compile(r"--max-steps=16\b")
    )
    start = page.get_by_role("button", name="Start training")
    start.click()
    # While it trains: Start cannot act, Stop can; the plot follows the run, with its ETA.
    expect(start).to_be_disabled(timeout=60_000)
    expect(page.get_by_role("button", name="Stop", exact=True)).to_be_enabled()
    expect(page.locator("#train-run-shown input")).not_to_have_value("", timeout=240_000)
    expect(page.locator("#train-plot")).to_contain_text("ETA", timeout=240_000)
    # A reload mid-run comes back to the same project and re-attaches to the running job.
    reload_and_settle(page)
    open_tab(page, "4 Train")
    expect(page.get_by_role("combobox", name="Project")).to_have_value("sourdough")
    expect(page.locator("#train-status")).to_contain_text("train job")
    expect(page.locator("#train-status")).to_contain_text("done", timeout=400_000)
    expect(page.get_by_role("button", name="Start training")).to_be_enabled()
    no_stop_shown(page)
    expect(page.locator("#train-plot canvas, #train-plot svg").first).to_be_visible()
    expect(page.locator("#train-plot")).to_contain_text("16 steps")  # the title follows the points drawn
    expect(page.locator("#train-plot")).to_contain_text("elapsed")  # the run's time, in the title
    expect(page.locator("#train-plot")).not_to_contain_text("ETA")  # nothing left once it ended
    run_dir = next((browser_studio.root / "projects" / "sourdough" / "runs").iterdir())
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    evals = [m["step"] for m in metrics if "eval_loss" in m]
    assert sum("loss" in m for m in metrics) == 16 and len(evals) >= 3
    # Every point is drawn, each eval point among them (and "eval" is in the legend), inside the plotting area.
    expect(page.locator(POINTS)).to_have_count(16 + len(evals))
    drawn = plot_marks(page)
    for step in evals:
        assert any(f"step: {step};" in m and "series: eval" in m for m in drawn), (step, drawn)
    expect(page.locator("#train-plot g.role-legend")).to_contain_text("eval")
    # The step axis counts whole steps: every label drawn is an integer, none repeated.
    ticks = x_tick_labels(page)
    assert ticks and all(t.replace(",", "").isdigit() for t in ticks) and len(set(ticks)) == len(ticks), ticks
    shot(page, "4-train")


def export_and_wait(page, studio):
    """Click Export, wait for that new job to end (done), and for the page to show it so."""
    before = studio.jobs.latest("sourdough", "export")
    page.get_by_role("button", name="Export", exact=True).click()
    deadline = time.monotonic() + 120
    while (now := studio.jobs.latest("sourdough", "export")) is None or (before and now.id == before.id):
        assert time.monotonic() < deadline, "no export job started"
        time.sleep(0.5)
    state = studio.wait_job("sourdough", "export", timeout=400)
    assert state.id == now.id and state.status == "done", state.error
    expect(page.locator("#export-status")).to_contain_text(f"{state.id}: done")
    return state


def test_export_merged_as_one_archive_then_a_gguf_with_its_verification_table(page, browser_studio):
    needs_training()
    # After a reload, the Run list offers the completed run.
    reload_and_settle(page)
    open_tab(page, "5 Export")
    expect(page.locator(".block.pending")).to_have_count(0, timeout=120_000)
    no_stop_shown(page)
    run_id = next((browser_studio.root / "projects" / "sourdough" / "runs").iterdir()).name
    page.get_by_role("combobox", name="Run").click()
    expect(page.get_by_role("option", name=run_id)).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#export-preview textarea, #export-preview input").first).to_have_value(
        re.compile(r"^ftstudio export sourdough ")
    )
    # Quant and the verification act on a GGUF only.
    choose(page, "Format", "merged")
    expect(page.get_by_role("combobox", name="Quant")).to_be_disabled()
    expect(page.get_by_role("combobox", name="Verify")).to_be_disabled()
    state = export_and_wait(page, browser_studio)
    assert "--format=merged" in state.cli
    exports = browser_studio.root / "projects" / "sourdough" / "exports"
    merged = next(exports.glob("*-merged"))
    # The merged model is one download: a zip of its folder, kept in exports/.archives/ (the tab says so), and the
    # zip is not listed as an export of its own.
    links = page.locator("#export-downloads a")
    expect(links).to_have_count(1)
    expect(page.locator("#export-downloads").get_by_role("row", name=re.compile(rf"{re.escape(merged.name)}\.zip"))
           ).to_have_count(1)  # fmt: skip
    expect(page.locator("#export-archive-note")).to_contain_text("exports/.archives/")
    expect(page.locator("#export-table")).not_to_contain_text(".archives")
    archive = exports / ".archives" / f"{merged.name}.zip"
    href = links.first.get_attribute("href")
    body = page.request.get(href if href.startswith("http") else browser_studio.url + href).body()
    assert body == archive.read_bytes()
    with zipfile.ZipFile(archive) as zf:
        assert {Path(n).name for n in zf.namelist()} == {p.name for p in merged.iterdir()}

    choose(page, "Format", "gguf")
    expect(page.get_by_role("combobox", name="Quant")).to_be_enabled()
    state = export_and_wait(page, browser_studio)
    assert "--format=gguf" in state.cli  # the merged export saved its format (the form rule); this one differs
    expect(page.locator("#export-verdict")).to_contain_text("Verification")
    # The verification is a table, one row per held-out prompt, not raw JSON.
    checks = page.locator("#export-checks")
    expect(checks).to_contain_text("same tokens")
    expect(checks).to_contain_text("stops at end of turn")
    expect(checks.locator("[role=gridcell]").first).to_be_visible()
    expect(page.locator("#export-verdict")).not_to_contain_text("{")
    expect(checks).not_to_contain_text('"prompts"')
    row = page.locator("#export-downloads tr", has_text=".gguf").first
    expect(row).to_be_visible()
    link = row.locator("a").first
    href = link.get_attribute("href")
    assert href and ".gguf" in href
    # The link serves the file itself: fetch it through the page's own origin and compare with the file on disk.
    gguf = next(exports.glob("*.gguf"))
    response = page.request.get(href if href.startswith("http") else browser_studio.url + href)
    assert response.ok and response.body() == gguf.read_bytes()
    no_stop_shown(page)
    shot(page, "5-export")


def test_chat_shows_text_as_text(page):
    needs_training()
    open_tab(page, "6 Chat")
    message = "What is ~~hooch~~ <b>really</b>?"
    page.get_by_label("Your message").fill(message)
    page.get_by_role("button", name="Send").click()
    # The conversation is shown as typed and written: `~~` is not strikethrough, `<b>` is not bold.
    for side in ("#chat-tuned", "#chat-base"):
        expect(page.locator(side)).to_contain_text(message, timeout=120_000)
        expect(page.locator(f"{side} del, {side} s, {side} strike, {side} .message b, {side} .message strong")
               ).to_have_count(0)  # fmt: skip
    shot(page, "6-chat")
