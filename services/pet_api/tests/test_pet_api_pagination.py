"""GET /pets: keyset pages in (created_at, id) order, filters, and their edges."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from core.db import Database
from core.models import Pet

T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def insert_pets(db: Database, pets: list[tuple[str, str, datetime]]) -> list[Pet]:
    """Rows straight into the table, so tests control created_at (ties included)."""
    rows = [Pet(name=n, pet_type=t, created_at=c, updated_at=c) for n, t, c in pets]
    async with db.session() as session:
        session.add_all(rows)
        await session.commit()
    return sorted(rows, key=lambda p: (p.created_at, p.id))


async def walk(client: httpx.AsyncClient, **params: Any) -> list[list[dict[str, Any]]]:
    """Every page, following next_cursor until it is null."""
    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        resp = await client.get("/pets", params=query)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 100, "pagination does not terminate"


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [item["id"] for item in items]


def row_ids(rows: list[Pet]) -> list[str]:
    return [str(p.id) for p in rows]


async def test_empty_directory_is_one_empty_page(client: httpx.AsyncClient) -> None:
    resp = await client.get("/pets")

    assert resp.status_code == 200
    assert resp.json() == {"items": [], "next_cursor": None}


async def test_default_page_is_20_oldest_first(client: httpx.AsyncClient, db: Database) -> None:
    rows = await insert_pets(db, [(f"p{i}", "cat", T0 + timedelta(seconds=i)) for i in range(25)])

    body = (await client.get("/pets")).json()

    assert ids(body["items"]) == row_ids(rows[:20])
    assert body["next_cursor"] is not None
    assert body["items"][0] == {
        "id": str(rows[0].id),
        "name": "p0",
        "pet_type": "cat",
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
    }


async def test_exactly_one_full_page_has_no_next_cursor(
    client: httpx.AsyncClient, db: Database
) -> None:
    rows = await insert_pets(db, [(f"p{i}", "dog", T0 + timedelta(seconds=i)) for i in range(5)])

    body = (await client.get("/pets", params={"limit": 5})).json()

    assert ids(body["items"]) == row_ids(rows)
    assert body["next_cursor"] is None


async def test_limit_100_is_allowed(client: httpx.AsyncClient, db: Database) -> None:
    rows = await insert_pets(db, [(f"p{i}", "dog", T0 + timedelta(seconds=i)) for i in range(101)])

    first = (await client.get("/pets", params={"limit": 100})).json()
    rest = (await client.get("/pets", params={"limit": 100, "cursor": first["next_cursor"]})).json()

    assert ids(first["items"]) == row_ids(rows[:100])
    assert ids(rest["items"]) == row_ids(rows[100:])
    assert rest["next_cursor"] is None
    assert (await client.get("/pets", params={"limit": 101})).status_code == 422


async def test_walking_every_page_yields_each_pet_once_in_order(
    client: httpx.AsyncClient, db: Database
) -> None:
    rows = await insert_pets(
        db, [(f"p{i}", "fish", T0 + timedelta(milliseconds=7 * i)) for i in range(23)]
    )

    pages = await walk(client, limit=5)

    assert [len(p) for p in pages] == [5, 5, 5, 5, 3]
    assert [i for page in pages for i in ids(page)] == row_ids(rows)


async def test_identical_created_at_is_ordered_by_id_and_nothing_is_skipped(
    client: httpx.AsyncClient, db: Database
) -> None:
    # Seven pets created in the same microsecond: page boundaries fall inside the tie.
    rows = await insert_pets(
        db,
        [(f"twin{i}", "rabbit", T0) for i in range(7)]
        + [("before", "rabbit", T0 - timedelta(microseconds=1))]
        + [("after", "rabbit", T0 + timedelta(microseconds=1))],
    )

    pages = await walk(client, limit=2)

    walked = [i for page in pages for i in ids(page)]
    assert walked == row_ids(rows)
    assert walked[1:8] == sorted(walked[1:8], key=uuid.UUID)


async def test_pet_type_filter(client: httpx.AsyncClient, db: Database) -> None:
    rows = await insert_pets(
        db, [(f"p{i}", "cat" if i % 3 else "dog", T0 + timedelta(seconds=i)) for i in range(9)]
    )

    body = (await client.get("/pets", params={"pet_type": "DOG"})).json()

    assert ids(body["items"]) == row_ids([p for p in rows if p.pet_type == "dog"])


async def test_name_search_is_a_case_insensitive_substring(
    client: httpx.AsyncClient, db: Database
) -> None:
    rows = await insert_pets(
        db,
        [
            ("Rex", "dog", T0),
            ("T-REX junior", "reptile", T0 + timedelta(seconds=1)),
            ("Rover", "dog", T0 + timedelta(seconds=2)),
        ],
    )

    body = (await client.get("/pets", params={"name": "rEx"})).json()

    assert ids(body["items"]) == row_ids(rows[:2])


async def test_name_search_matches_wildcards_literally(
    client: httpx.AsyncClient, db: Database
) -> None:
    rows = await insert_pets(
        db,
        [
            ("100% cat", "cat", T0),
            ("1000 cats", "cat", T0 + timedelta(seconds=1)),
            ("a_b", "cat", T0 + timedelta(seconds=2)),
            ("axb", "cat", T0 + timedelta(seconds=3)),
            ("back\\slash", "cat", T0 + timedelta(seconds=4)),
        ],
    )

    async def found(name: str) -> list[str]:
        return ids((await client.get("/pets", params={"name": name})).json()["items"])

    assert await found("0%") == row_ids(rows[:1])
    assert await found("%") == row_ids(rows[:1])
    assert await found("_") == row_ids(rows[2:3])
    assert await found("\\") == row_ids(rows[4:5])
    assert await found("zzz") == []


async def test_filters_combine_with_the_cursor(client: httpx.AsyncClient, db: Database) -> None:
    rows = await insert_pets(
        db,
        [
            (name, kind, T0 + timedelta(seconds=i))
            for i, (name, kind) in enumerate(
                [("Max", "dog"), ("Maxine", "cat"), ("Rex", "dog"), ("max ii", "dog")] * 4
            )
        ],
    )
    expected = [p for p in rows if p.pet_type == "dog" and "max" in p.name.lower()]

    pages = await walk(client, limit=3, pet_type="dog", name="MAX")

    assert [len(p) for p in pages] == [3, 3, 2]
    assert [i for page in pages for i in ids(page)] == row_ids(expected)


async def test_pets_created_while_paging_appear_later_without_duplicates(
    client: httpx.AsyncClient, auth: dict[str, str], new_pet
) -> None:
    first_three = [await new_pet(f"p{i}") for i in range(3)]
    page1 = (await client.get("/pets", params={"limit": 2})).json()

    late = await new_pet("late")
    page2 = (await client.get("/pets", params={"limit": 2, "cursor": page1["next_cursor"]})).json()

    assert ids(page1["items"]) == ids(first_three[:2])
    assert ids(page2["items"]) == [first_three[2]["id"], late["id"]]
    assert page2["next_cursor"] is None
