"""The pet directory page at `/`, in headless Chromium against the real app on a local port:
what a visitor and a signed-in user see and can do, on a desktop and on a phone."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from playwright.async_api import Locator, Page, expect
from sqlmodel import col, select

from core.auth import create_access_token
from core.db import Database
from core.models import Pet, User
from core.schemas.pets import PET_NAME_MAX, PetType
from pet_api.settings import PetApiSettings
from testkit.browser import assert_accessible, screenshot

from .conftest import Account, serve_http  # type: ignore[import-not-found]

pytestmark = pytest.mark.web

STORAGE_KEY = "pet-directory.session"  # where pets.js keeps the session
EXPIRED_MESSAGE = "Your session has expired. Sign in again to go on."  # /ui/core/session.js
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
async def site(settings: PetApiSettings, db: Database) -> AsyncIterator[str]:
    """The base URL of the app, with empty tables."""
    async with serve_http(settings) as url:
        yield url


async def insert_pets(db: Database, pets: list[tuple[str, str]]) -> None:
    """Rows straight into the table, a minute apart in the given order (the list's order)."""
    rows = [
        Pet(name=name, pet_type=pet_type, created_at=T0 + timedelta(minutes=i))
        for i, (name, pet_type) in enumerate(pets)
    ]
    for row in rows:
        row.updated_at = row.created_at
    async with db.session() as session:
        session.add_all(rows)
        await session.commit()


def names(page: Page) -> Locator:
    """The names in the list, in order (each row's header cell)."""
    return page.get_by_role("rowheader")


def row(page: Page, name: str) -> Locator:
    return page.get_by_role("row").filter(has=page.get_by_role("rowheader", name=name, exact=True))


async def sign_in(page: Page, account: Account) -> None:
    banner = page.get_by_role("banner")
    await banner.get_by_role("button", name="Sign in").click()
    form = page.get_by_role("form", name="Sign in")
    await form.get_by_label("Username").fill(account.username)
    await form.get_by_label("Password").fill(account.password)
    await form.get_by_role("button", name="Sign in").click()
    await expect(banner.get_by_text(f"Signed in as {account.username}")).to_be_visible()


async def expired_token(db: Database, settings: PetApiSettings, username: str) -> str:
    """A token the real function signs with the app's secret, expired a minute ago."""
    async with db.session() as session:
        user = (await session.execute(select(User).where(User.username == username))).scalar_one()
    past = settings.model_copy(update={"access_token_ttl_seconds": -60})
    return create_access_token(user.id, past)


async def test_a_visitor_sees_the_list_but_cannot_change_it(
    site: str, db: Database, page: Page
) -> None:
    await page.goto(site)
    await expect(page.get_by_role("heading", name="Pet directory", level=1)).to_be_visible()
    await expect(page.get_by_text("No pets yet.")).to_be_visible()

    await insert_pets(db, [("Rex", "dog"), ("Whiskers", "cat"), ("Nemo", "fish")])
    await page.reload()

    await expect(names(page)).to_have_text(["Rex", "Whiskers", "Nemo"])
    await expect(row(page, "Whiskers")).to_contain_text("Cat")
    await expect(page.get_by_text("No pets yet.")).to_be_hidden()
    await expect(page.get_by_role("banner").get_by_role("button", name="Sign in")).to_be_visible()
    await expect(page.get_by_role("button", name="Sign out")).to_be_hidden()
    await expect(page.get_by_role("form", name="Add a pet")).to_be_hidden()
    await expect(page.get_by_role("button", name=re.compile(r"^(Edit|Delete)\b"))).to_have_count(0)
    await expect(page.get_by_role("button", name="Previous page")).to_be_disabled()
    await expect(page.get_by_role("button", name="Next page")).to_be_disabled()
    # The page's list of types is its own copy of the API's: they must agree.
    await expect(page.get_by_label("Filter by type").locator("option")).to_have_text(
        ["All types", *(t.value.capitalize() for t in PetType)]
    )
    await assert_accessible(page)


async def test_signing_in_and_out(site: str, account: Account, page: Page) -> None:
    await page.goto(site)
    banner = page.get_by_role("banner")
    form = page.get_by_role("form", name="Sign in")
    await expect(form).to_be_hidden()

    await banner.get_by_role("button", name="Sign in").click()
    await expect(form.get_by_label("Username")).to_be_focused()
    await form.get_by_label("Username").fill(account.username)
    await form.get_by_label("Password").fill("not the password")
    await form.get_by_role("button", name="Sign in").click()

    password = form.get_by_label("Password")
    await expect(form.get_by_text("Incorrect username or password")).to_be_visible()
    await expect(password).to_have_accessible_description("Incorrect username or password")
    await expect(password).to_be_focused()
    await expect(banner.get_by_text("Signed in as")).to_be_hidden()

    await password.fill(account.password)
    await password.press("Enter")

    await expect(banner.get_by_text("Signed in as alice")).to_be_visible()
    await expect(page.get_by_role("status")).to_have_text("Signed in as alice.")
    await expect(form).to_be_hidden()
    await expect(banner.get_by_role("button", name="Sign in")).to_be_hidden()
    await expect(page.get_by_role("form", name="Add a pet")).to_be_visible()

    await page.reload()  # the session outlives the page
    await expect(banner.get_by_text("Signed in as alice")).to_be_visible()

    await banner.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("status")).to_have_text("You have signed out.")
    await expect(banner.get_by_role("button", name="Sign in")).to_be_focused()
    await expect(page.get_by_role("form", name="Add a pet")).to_be_hidden()


async def test_adding_editing_and_deleting_a_pet(
    site: str, db: Database, account: Account, page: Page
) -> None:
    await insert_pets(db, [("Rex", "dog"), ("Whiskers", "cat"), ("Nemo", "fish")])
    await page.goto(site)
    await sign_in(page, account)
    status = page.get_by_role("status")

    # Add: the API refuses a blank name, and says so by the field.
    add = page.get_by_role("form", name="Add a pet")
    name = add.get_by_label("Name")
    await name.fill("   ")
    await add.get_by_label("Type").select_option(label="Cat")
    await add.get_by_role("button", name="Add pet").click()
    await expect(name).to_have_accessible_description(re.compile("must not be blank"))
    await expect(name).to_have_attribute("aria-invalid", "true")
    await expect(name).to_be_focused()
    await assert_accessible(page)  # signed in, with a field in error

    await name.fill("Biscuit")
    await add.get_by_role("button", name="Add pet").click()
    await expect(status).to_have_text("Added Biscuit.")
    await expect(names(page)).to_have_text(["Rex", "Whiskers", "Nemo", "Biscuit"])
    await expect(row(page, "Biscuit")).to_contain_text("Cat")
    await expect(name).to_have_value("")
    await expect(name).not_to_have_attribute("aria-invalid", "true")
    await screenshot(page, "pets-list")

    # Edit, in a dialog; its 422s are shown there too.
    await page.get_by_role("button", name="Edit Biscuit", exact=True).click()
    dialog = page.get_by_role("dialog", name="Edit Biscuit")
    await expect(dialog.get_by_label("Name")).to_be_focused()
    await expect(dialog.get_by_label("Name")).to_have_value("Biscuit")
    await expect(dialog.get_by_label("Type")).to_have_value("cat")
    await dialog.get_by_label("Name").fill("")
    await dialog.get_by_role("button", name="Save").click()
    await expect(dialog.get_by_label("Name")).to_have_accessible_description(
        re.compile("at least 1 character")
    )
    await assert_accessible(page)  # the edit dialog, with its error
    await expect(dialog.get_by_label("Name")).to_have_accessible_description(
        re.compile("at least 1 character")
    )
    await dialog.get_by_label("Name").fill("Biscuit the Brave")
    await dialog.get_by_label("Type").select_option("dog")
    await dialog.get_by_role("button", name="Save").click()
    await expect(dialog).to_be_hidden()
    await expect(status).to_have_text("Saved Biscuit the Brave.")
    await expect(row(page, "Biscuit the Brave")).to_contain_text("Dog")

    # Delete asks first; Escape keeps the pet.
    delete = page.get_by_role("button", name="Delete Biscuit the Brave", exact=True)
    confirm = page.get_by_role("dialog", name="Delete Biscuit the Brave?")
    await delete.click()
    await expect(confirm.get_by_role("button", name="Cancel")).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(confirm).to_be_hidden()
    await expect(row(page, "Biscuit the Brave")).to_be_visible()

    await delete.click()
    await confirm.get_by_role("button", name="Delete").click()
    await expect(confirm).to_be_hidden()
    await expect(status).to_have_text("Deleted Biscuit the Brave.")
    await expect(names(page)).to_have_text(["Rex", "Whiskers", "Nemo"])
    async with db.session() as session:
        left = (await session.execute(select(Pet.name).order_by(col(Pet.created_at)))).scalars()
        assert list(left) == ["Rex", "Whiskers", "Nemo"]


async def test_the_type_filter_and_the_name_search_narrow_the_list(
    site: str, db: Database, page: Page
) -> None:
    await insert_pets(
        db,
        [
            ("Rex", "dog"),
            ("Rexy", "cat"),
            ("Whiskers", "cat"),
            ("Nemo", "fish"),
            ("T-Rex", "reptile"),
        ],
    )
    await page.goto(site)
    await expect(names(page)).to_have_count(5)

    await page.get_by_label("Filter by type").select_option(label="Cat")
    await expect(names(page)).to_have_text(["Rexy", "Whiskers"])

    # The search is the API's (?name=), any case, any part of the name.
    async with page.expect_request(lambda request: "name=REX" in request.url):
        await page.get_by_label("Search by name").fill("REX")
    await expect(names(page)).to_have_text(["Rexy"])

    await page.get_by_label("Filter by type").select_option(label="All types")
    await expect(names(page)).to_have_text(["Rex", "Rexy", "T-Rex"])

    await page.get_by_label("Search by name").fill("zzz")
    await expect(page.get_by_text("No pets match the filter.")).to_be_visible()
    await expect(names(page)).to_have_count(0)

    await page.get_by_label("Search by name").fill("")
    await expect(names(page)).to_have_text(["Rex", "Rexy", "Whiskers", "Nemo", "T-Rex"])


async def test_paging_forward_and_back_through_25_pets(site: str, db: Database, page: Page) -> None:
    everyone = [f"Pet {i:02}" for i in range(1, 26)]
    await insert_pets(db, [(name, "cat") for name in everyone])
    await page.goto(site)
    previous = page.get_by_role("button", name="Previous page")
    next_ = page.get_by_role("button", name="Next page")
    pages = page.get_by_role("navigation", name="Pages")

    await expect(names(page)).to_have_text(everyone[:10])
    await expect(previous).to_be_disabled()
    await expect(pages).to_contain_text("Page 1")

    await next_.click()
    await expect(names(page)).to_have_text(everyone[10:20])
    await expect(pages).to_contain_text("Page 2")

    await next_.press("Enter")  # by keyboard: the focus stays on the pager at the end
    await expect(names(page)).to_have_text(everyone[20:])
    await expect(next_).to_be_disabled()
    await expect(previous).to_be_focused()

    await previous.click()
    await expect(names(page)).to_have_text(everyone[10:20])
    await expect(next_).to_be_enabled()

    await previous.click()
    await expect(names(page)).to_have_text(everyone[:10])
    await expect(previous).to_be_disabled()
    await expect(pages).to_contain_text("Page 1")


async def test_an_expired_session_goes_back_to_signing_in(
    site: str, db: Database, settings: PetApiSettings, account: Account, page: Page
) -> None:
    await insert_pets(db, [("Rex", "dog")])
    await page.goto(site)
    await sign_in(page, account)
    stale = json.dumps({"token": await expired_token(db, settings, "alice"), "username": "alice"})
    await page.evaluate("([key, value]) => localStorage.setItem(key, value)", [STORAGE_KEY, stale])

    # A write with the expired token: the page signs out and says why.
    add = page.get_by_role("form", name="Add a pet")
    await add.get_by_label("Name").fill("Too late")
    await add.get_by_label("Type").select_option("dog")
    await add.get_by_role("button", name="Add pet").click()

    await expect(page.get_by_role("status")).to_have_text(EXPIRED_MESSAGE)
    await expect(page.get_by_role("form", name="Sign in").get_by_label("Username")).to_be_focused()
    await expect(add).to_be_hidden()
    await expect(page.get_by_role("banner").get_by_text("Signed in as")).to_be_hidden()
    await expect(names(page)).to_have_text(["Rex"])
    await expect(page.get_by_role("button", name=re.compile(r"^Edit\b"))).to_have_count(0)

    # Opening the page with an expired token does the same.
    await page.evaluate("([key, value]) => localStorage.setItem(key, value)", [STORAGE_KEY, stale])
    await page.reload()
    await expect(page.get_by_role("status")).to_have_text(EXPIRED_MESSAGE)
    await expect(page.get_by_role("form", name="Sign in")).to_be_visible()
    await expect(names(page)).to_have_text(["Rex"])

    async with db.session() as session:
        assert (await session.execute(select(Pet.name))).scalars().all() == ["Rex"]


async def test_the_page_fits_a_phone(
    site: str, db: Database, account: Account, phone_page: Page
) -> None:
    page = phone_page
    await insert_pets(
        db, [("Rex", "dog"), ("W" * PET_NAME_MAX, "hamster"), ("Whiskers", "cat"), ("Nemo", "fish")]
    )
    await page.goto(site)
    await sign_in(page, account)  # the widest list: with Edit and Delete buttons

    await expect(names(page)).to_have_count(4)
    await expect(page.get_by_role("columnheader", name="Added")).to_be_hidden()
    await expect(page.get_by_role("button", name="Edit Rex", exact=True)).to_be_visible()
    add = page.get_by_role("form", name="Add a pet")
    await add.get_by_label("Name").fill("Bubbles")
    await add.get_by_label("Type").select_option("fish")
    await add.get_by_role("button", name="Add pet").click()
    await expect(row(page, "Bubbles")).to_be_visible()

    # Nothing wider than the screen, not even inside the table's scrolling box.
    fits = await page.evaluate(
        """() => {
            const wrap = document.querySelector(".table-wrap");
            return [document.documentElement.scrollWidth <= innerWidth,
                    wrap.scrollWidth <= wrap.clientWidth];
        }"""
    )
    assert fits == [True, True]
    await screenshot(page, "pets-phone")
