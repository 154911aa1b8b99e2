"""End to end in a real browser: Playwright driving Debian's Chromium against `ftstudio ui` on 127.0.0.1.

One walk through the whole product, as a first-time user would click it: create a project, upload a document and
find it by search, pick a tiny local model, generate data with a local helper server, train a few steps and watch
the loss plot, export a GGUF and find its download link. A screenshot of each tab is kept in test-artifacts/.
"""

from __future__ import annotations

import re
import shutil
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


def test_create_a_project(page, browser_studio):
    page.get_by_label("New project").fill("sourdough")
    page.get_by_role("button", name="Create project").click()
    page.get_by_text("Created project").wait_for()
    assert (browser_studio.root / "projects" / "sourdough" / "project.toml").is_file()


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
    shot(page, "3-generate")


def test_train_a_few_steps_and_see_the_loss_plot_update(page, browser_studio):
    needs_training()
    open_tab(page, "4 Train")
    # Max steps may be empty (a text box naming its default), Batch size is a number box.
    for box, value in ((page.get_by_role("textbox", name=re.compile(r"^Max steps")), "4"),
                       (page.get_by_label("Batch size", exact=True), "2")):  # fmt: skip
        box.fill(value)
        box.press("Tab")
    expect(page.locator("#train-preview textarea, #train-preview input").first).to_have_value(
        re.compile(r"--max-steps=4\b")
    )
    page.get_by_role("button", name="Start training").click()
    # The plot follows the run while it trains: its dropdown names the run and the chart draws the points.
    expect(page.locator("#train-run-shown input")).not_to_have_value("", timeout=240_000)
    # A reload mid-run comes back to the same project and re-attaches to the running job.
    page.reload()
    open_tab(page, "4 Train")
    expect(page.get_by_role("combobox", name="Project")).to_have_value("sourdough")
    expect(page.locator("#train-status")).to_contain_text("train job")
    expect(page.locator("#train-status")).to_contain_text("done", timeout=400_000)
    expect(page.locator("#train-plot canvas, #train-plot svg").first).to_be_visible()
    expect(page.locator("#train-plot")).to_contain_text("4 steps")  # the title follows the points drawn
    expect(page.locator("#train-plot")).to_contain_text("elapsed")  # the run's time, in the title
    expect(page.locator("#train-plot")).to_contain_text("eval")  # the one eval point is drawn, and in the legend
    run_dir = next((browser_studio.root / "projects" / "sourdough" / "runs").iterdir())
    assert (run_dir / "metrics.jsonl").read_text().count('"loss"') == 4
    shot(page, "4-train")


def test_export_a_gguf_and_find_its_download_link(page, browser_studio):
    needs_training()
    open_tab(page, "5 Export")
    expect(page.locator("#export-preview textarea, #export-preview input").first).to_have_value(
        re.compile(r"^ftstudio export sourdough ")
    )
    page.get_by_role("button", name="Export", exact=True).click()
    expect(page.locator("#export-status")).to_contain_text("done", timeout=400_000)
    expect(page.locator("#export-verdict")).to_contain_text("Verification")
    row = page.locator("#export-downloads tr", has_text=".gguf").first
    expect(row).to_be_visible()
    link = row.locator("a").first
    href = link.get_attribute("href")
    assert href and ".gguf" in href
    # The link serves the file itself: fetch it through the page's own origin and compare with the file on disk.
    gguf = next((browser_studio.root / "projects" / "sourdough" / "exports").glob("*.gguf"))
    response = page.request.get(href if href.startswith("http") else browser_studio.url + href)
    assert response.ok and response.body() == gguf.read_bytes()
    shot(page, "5-export")


def test_chat_with_the_tuned_model(page):
    needs_training()
    open_tab(page, "6 Chat")
    page.get_by_label("Your message").fill("What is hooch?")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#chat-base")).to_contain_text("What is hooch?", timeout=120_000)
    shot(page, "6-chat")
