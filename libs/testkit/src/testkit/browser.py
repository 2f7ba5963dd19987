"""Headless Chromium for browser tests: Debian's `chromium` package driven by Playwright
(no browser can be downloaded here, so Playwright is pointed at the system one).

`page` fails its test on any uncaught script error or console error, so a broken page cannot
pass by accident; `screenshot(page, name)` saves the view under WEB_SCREENSHOTS_DIR
(build/screenshots by default), where `make screenshots` takes them for the README."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, Page, async_playwright

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
# No sandbox (CI runs as root), no GPU, and no calls home: this network refuses them.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(os.environ.get("WEB_SCREENSHOTS_DIR", "build/screenshots"))
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture(scope="session")
def chromium() -> str:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    return CHROMIUM


@pytest.fixture(scope="session")
async def browser(chromium: str) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@contextlib.asynccontextmanager
async def open_page(browser: Browser, viewport: dict[str, int] = DESKTOP) -> AsyncIterator[Page]:
    """A fresh page (its own storage) that records script and console errors, and fails the
    test at the end if there were any."""
    context = await browser.new_context(viewport=viewport)  # type: ignore[arg-type]
    context.set_default_timeout(15_000)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
    page.on(
        "console",
        lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None,
    )
    try:
        yield page
    finally:
        await context.close()
    # A 401/404/409 the page expects shows up as a console "Failed to load resource" line.
    unexpected = [e for e in errors if "Failed to load resource" not in e]
    assert not unexpected, "the page logged errors:\n" + "\n".join(unexpected)


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    async with open_page(browser) as page:
        yield page


@pytest.fixture
async def phone_page(browser: Browser) -> AsyncIterator[Page]:
    async with open_page(browser, PHONE) as page:
        yield page


async def screenshot(page: Page, name: str) -> Path:
    await asyncio.to_thread(SCREENSHOTS.mkdir, parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=path)
    return path


# WCAG 2.x levels A and AA: labels, names, contrast, landmarks, ARIA use.
WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


async def accessibility_problems(page: Page) -> list[str]:
    """What axe-core (the engine behind Lighthouse's audit) finds wrong with the page as it is
    now, against WCAG A and AA: one line per rule, with the elements it names."""
    results = await Axe().run(
        page, options={"runOnly": {"type": "tag", "values": WCAG_AA}, "resultTypes": ["violations"]}
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at "
        + ", ".join(" ".join(node["target"]) for node in v["nodes"][:5])
        for v in results.response["violations"]
    ]


async def assert_accessible(page: Page) -> None:
    """No WCAG A/AA problem axe-core can find, in the light and in the dark colour scheme."""
    found = {}
    for scheme in ("dark", "light"):
        await page.emulate_media(color_scheme=scheme)
        found[scheme] = await accessibility_problems(page)
    assert found == {"dark": [], "light": []}, found
