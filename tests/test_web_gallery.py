"""The media gallery in headless Chromium, against the real gateway, worker and Replicate mock:
what a person does on the page, and what they must see."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
from playwright.async_api import Locator, Page, Route, expect

from core.db import Database
from core.users import ensure_user, get_user_by_username
from testkit.browser import PHONE, assert_accessible, screenshot

from .conftest import JWT_SECRET, Starter, mock_call  # type: ignore[import-not-found]

pytestmark = [pytest.mark.e2e, pytest.mark.web]

PASSWORD = "password-123"


async def new_user(db: Database, username: str = "eve") -> uuid.UUID:
    async with db.session() as session:
        await ensure_user(session=session, username=username, password=PASSWORD)
        user = await get_user_by_username(session=session, username=username)
    assert user is not None
    return user.id


async def sign_in(page: Page, base_url: str, username: str = "eve") -> None:
    await page.goto(base_url + "/")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_text(f"Signed in as {username}")).to_be_visible()


def api(base_url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base_url, timeout=10)


async def bearer(http: httpx.AsyncClient, username: str = "eve") -> None:
    token = await http.post("/auth/token", data={"username": username, "password": PASSWORD})
    http.headers["Authorization"] = f"Bearer {token.raise_for_status().json()['access_token']}"


def card(page: Page, prompt: str) -> Locator:
    return page.locator("#gallery .card").filter(has_text=prompt)


async def expect_images_loaded(images: Locator, count: int) -> None:
    """`count` images that the browser actually decoded (natural width > 0)."""
    await expect(images).to_have_count(count)
    for n in range(count):
        await expect(images.nth(n)).to_have_js_property("complete", True)
        width = await images.nth(n).evaluate("img => img.naturalWidth")
        assert width > 0, f"image {n} did not load"


async def test_sign_in_submit_and_watch_the_card_go_live_to_its_images(
    db: Database, page: Page, start_gateway: Starter, start_worker: Starter
) -> None:
    await new_user(db)
    with start_gateway() as gateway, start_worker():
        await page.goto(gateway.base_url + "/")
        await expect(page.get_by_label("Username")).to_be_visible()
        await assert_accessible(page)
        await page.get_by_label("Username").fill("eve")
        await page.get_by_label("Password").fill("not-her-password")
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("alert")).to_have_text("Incorrect username or password")
        await sign_in(page, gateway.base_url)
        await expect(page.get_by_label("Prompt")).to_be_focused()  # ready to type
        await expect(page.get_by_role("status")).to_have_text(re.compile("No jobs yet"))

        # The API's 422 details, each by its field.
        await page.get_by_label("Seed").fill("-3")
        await page.get_by_role("button", name="Generate").click()
        await expect(page.locator("#prompt-error")).to_contain_text("at least 1 character")
        await expect(page.locator("#seed-error")).to_contain_text("greater than or equal to 0")
        await expect(page.get_by_label("Prompt")).to_have_attribute("aria-invalid", "true")
        await assert_accessible(page)  # the form with its error messages

        # The button stays disabled while the request is in flight.
        release = asyncio.Event()

        async def held(route: Route) -> None:
            await release.wait()
            await route.continue_()

        await page.route("**/generate", held)
        await page.get_by_label("Seed").fill("42")
        await page.get_by_label("Images").select_option("2")
        await page.get_by_label("Format").select_option("png")
        await page.get_by_label("Priority").select_option("high")
        await page.get_by_label("Prompt").fill("a lighthouse at dusk, oil on canvas")
        await page.get_by_label("Prompt").press("Control+Enter")  # submits from the keyboard
        await expect(page.get_by_role("button", name="Generate")).to_be_disabled()
        await expect(page.locator("#seed-error")).to_be_empty()
        release.set()
        await expect(page.get_by_role("button", name="Generate")).to_be_enabled()
        await page.unroute("**/generate")

        job = card(page, "a lighthouse at dusk")
        await expect(job).to_have_count(1)  # at once, before the job finishes
        await expect(job.locator(".badge")).to_have_text("succeeded", timeout=60_000)
        await expect_images_loaded(job.locator("img"), 2)
        await expect(job.get_by_role("button", name=re.compile("^Cancel"))).to_be_hidden()
        await screenshot(page, "gallery")

        # The detail view: full-size images with downloads, parameters, timings and history.
        await job.get_by_role("button", name=re.compile("^Details")).click()
        dialog = page.get_by_role("dialog")
        await expect(dialog).to_be_visible()
        await expect_images_loaded(dialog.locator("figure img"), 2)
        download = dialog.get_by_role("link", name="Download image 1")
        await expect(download).to_have_attribute("href", re.compile("^blob:"))
        await expect(download).to_have_attribute("download", re.compile(r"-0\.png$"))
        facts = dialog.locator("dl.facts")
        await expect(facts).to_contain_text("seed42")
        await expect(facts).to_contain_text("Priorityhigh")
        await expect(facts).to_contain_text("Ran for")
        history = dialog.locator("ol.history li")
        await expect(history.filter(has_text="queued → running")).to_have_count(1)
        await expect(history.filter(has_text="running → succeeded")).to_have_count(1)
        await screenshot(page, "detail")
        await assert_accessible(page)
        await page.keyboard.press("Escape")
        await expect(dialog).to_be_hidden()
        # The keyboard is back where it was: on the card's Details button.
        await expect(job.get_by_role("button", name=re.compile("^Details"))).to_be_focused()

        # Sign out: the sign-in form again, and the images are gone with the session.
        await page.get_by_role("button", name="Sign out").click()
        await expect(page.get_by_label("Username")).to_be_visible()
        await expect(page.locator("#gallery .card")).to_have_count(0)


async def test_cancel_a_queued_job_then_retry_a_failed_one(
    db: Database, mock_url: str, page: Page, start_gateway: Starter, start_worker: Starter
) -> None:
    await new_user(db)
    with start_gateway() as gateway:
        await sign_in(page, gateway.base_url)
        await page.get_by_label("Prompt").fill("a job nobody runs")
        await page.get_by_role("button", name="Generate").click()
        waiting = card(page, "a job nobody runs")
        await expect(waiting.locator(".state-text")).to_have_text("0 ahead in the queue")
        await waiting.get_by_role("button", name=re.compile("^Cancel")).click()
        await expect(waiting.locator(".badge")).to_have_text("canceled")
        await expect(waiting.get_by_role("button", name=re.compile("^Retry"))).to_be_visible()

        # A prediction that fails: the card shows why, and Retry runs it again to the end.
        mock_call(mock_url, "POST", "/_mock/faults", json={"next": {"create": ["fail"]}})
        with start_worker():
            await page.get_by_label("Prompt").fill("second time lucky")
            await page.get_by_role("button", name="Generate").click()
            lucky = card(page, "second time lucky")
            await expect(lucky.locator(".badge")).to_have_text("failed", timeout=60_000)
            await expect(lucky.locator(".error-text")).to_contain_text("injected fault")
            await screenshot(page, "failed")
            await assert_accessible(page)  # cards of every kind: failed, canceled
            await lucky.get_by_role("button", name=re.compile("^Retry")).click()
            await expect(lucky.locator(".badge")).to_have_text("succeeded", timeout=60_000)
            await expect(lucky.locator(".error-text")).to_be_hidden()
            await expect_images_loaded(lucky.locator("img"), 1)


async def test_the_gallery_scrolls_through_every_page_newest_first_and_filters(
    db: Database, page: Page, start_gateway: Starter
) -> None:
    await new_user(db)
    with start_gateway() as gateway:
        async with api(gateway.base_url) as http:
            await bearer(http)
            ids = []
            for n in range(30):
                accepted = await http.post("/generate", json={"prompt": f"scene {n:02d}"})
                ids.append(accepted.raise_for_status().json()["job_id"])
            for job_id in ids[:5]:
                (await http.post(f"/jobs/{job_id}/cancel")).raise_for_status()

        await sign_in(page, gateway.base_url)
        cards = page.locator("#gallery .card")
        await expect(cards.first).to_contain_text("scene 29")
        await cards.last.scroll_into_view_if_needed()  # infinite scroll: more as you reach the end
        await page.mouse.wheel(0, 20_000)
        await expect(cards).to_have_count(30)
        await expect(page.get_by_role("status")).to_have_text("All 30 jobs shown.")
        shown = await cards.evaluate_all("cards => cards.map(c => c.dataset.jobId)")
        assert shown == list(reversed(ids))

        await page.get_by_label("Show").select_option("canceled")
        await expect(cards).to_have_count(5)
        await expect(cards.locator(".badge")).to_have_text(["canceled"] * 5)
        await page.get_by_label("Show").select_option("")
        await expect(cards.first).to_contain_text("scene 29")


async def test_an_expired_token_sends_you_back_to_sign_in_with_a_message(
    db: Database, page: Page, start_gateway: Starter
) -> None:
    user_id = await new_user(db)
    expired = jwt.encode(
        {"sub": str(user_id), "exp": datetime.now(UTC) - timedelta(minutes=1)},
        JWT_SECRET,
        algorithm="HS256",
    )
    with start_gateway() as gateway:
        await page.goto(gateway.base_url + "/")
        await page.evaluate(
            "token => localStorage.setItem('media-gateway.session',"
            " JSON.stringify({token, username: 'eve'}))",
            expired,
        )
        await page.reload()
        await expect(page.locator("#signin-message")).to_have_text(
            "Your session has expired. Sign in again to go on."
        )
        await expect(page.get_by_label("Username")).to_be_visible()
        await sign_in(page, gateway.base_url)


async def test_on_a_phone_the_card_shows_progress_and_the_page_fits_the_screen(
    db: Database, mock_url: str, phone_page: Page, start_gateway: Starter, start_worker: Starter
) -> None:
    await new_user(db)
    # Predictions of 6 s, processing in four steps: long enough to see the card run.
    mock_call(mock_url, "POST", "/_mock/faults", json={"latency_seconds": 6})
    with start_gateway() as gateway, start_worker():
        await sign_in(phone_page, gateway.base_url)
        await phone_page.get_by_label("Prompt").fill("a tiny red boat, seen from above")
        await phone_page.get_by_role("button", name="Generate").click()
        boat = card(phone_page, "a tiny red boat")
        await expect(boat.locator(".badge")).to_have_text("running", timeout=30_000)
        await expect(boat.locator(".state-text")).to_have_text(re.compile(r"Generating, \d+%"))
        await expect(boat.locator("progress")).to_be_visible()
        await expect(boat.locator(".badge")).to_have_text("succeeded", timeout=60_000)
        await expect(boat.locator("progress")).to_be_hidden()
        await expect_images_loaded(boat.locator("img"), 1)
        overflow = await phone_page.evaluate(
            "() => document.documentElement.scrollWidth - window.innerWidth"
        )
        assert overflow <= 0, f"the page is {overflow}px wider than a {PHONE['width']}px screen"
        await boat.scroll_into_view_if_needed()
        await screenshot(phone_page, "gallery-phone")
        await assert_accessible(phone_page)
