"""Debian's Chromium driven by Playwright (no browser download), for the browser tests: the browser is started once
(`chromium`), and each test gets a page of its own (`new_page`), with its own storage, so nothing a page remembered
(the last project) reaches the next test."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run"]  # fmt: skip


@contextmanager
def chromium() -> Iterator:
    """The started browser; skips when Chromium is not installed."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (./install.sh dev installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def new_page(browser, url: str) -> Iterator:
    """A 1280×1000 page opened on `url` in a new browser context, with 60 s timeouts."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    expect.set_options(timeout=60_000)
    page.goto(url)
    try:
        yield page
    finally:
        context.close()


@contextmanager
def chromium_page(url: str) -> Iterator:
    """A browser of its own with one page on `url` (for a module that shares one page across its tests)."""
    with chromium() as browser, new_page(browser, url) as page:
        yield page
