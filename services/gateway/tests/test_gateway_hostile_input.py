"""Hostile input to POST /generate gets a clear 4xx, never a 500, and no job is stored."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from core.db import Database
from core.models import Job
from core.web_errors import ECHO_MAX_CHARS
from testkit.http import field_error

JSON = {"Content-Type": "application/json"}
LIMIT = 64 * 1024  # GATEWAY_MAX_BODY_BYTES' default


async def job_count(db: Database) -> int:
    async with db.session() as session:
        return int((await session.execute(select(func.count()).select_from(Job))).scalar_one())


@pytest.mark.parametrize(
    ("raw", "loc"),
    [
        (rb'{"prompt": "x\ud800"}', ["body", "prompt"]),
        (
            rb'{"prompt": "fox", "params": {"aspect_ratio": "\udc00"}}',
            ["body", "params", "aspect_ratio"],
        ),
        (rb'{"prompt": "fox", "model": "a\ud800/b"}', ["body", "model"]),
    ],
)
async def test_a_lone_surrogate_is_a_422_naming_the_field(
    client: httpx.AsyncClient, alice: dict[str, str], db: Database, raw: bytes, loc: list[Any]
) -> None:
    resp = await client.post("/generate", content=raw, headers={**alice, **JSON})

    field_error(resp, loc)
    assert await job_count(db) == 0


@pytest.mark.parametrize("prompt", ["a\u0000b", "a\u0007b", "a\u001bb", "\u007f"])
async def test_control_characters_in_the_prompt_are_a_422(
    client: httpx.AsyncClient, alice: dict[str, str], db: Database, prompt: str
) -> None:
    resp = await client.post("/generate", json={"prompt": prompt}, headers=alice)

    assert "control characters" in field_error(resp, ["body", "prompt"])["msg"]
    assert await job_count(db) == 0


async def test_a_multi_line_prompt_is_fine(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    resp = await client.post("/generate", json={"prompt": "a fox\n\tin snow\r\n"}, headers=alice)

    assert resp.status_code == 202, resp.text


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"go_fast": "yes"}, "go_fast"),
        ({"go_fast": 0}, "go_fast"),
        ({"disable_safety_checker": "true"}, "disable_safety_checker"),
        ({"num_outputs": "2"}, "num_outputs"),
        ({"num_outputs": 2.5}, "num_outputs"),
        ({"num_outputs": True}, "num_outputs"),
        ({"seed": "42"}, "seed"),
        ({"output_quality": 80.5}, "output_quality"),
        ({"megapixels": 1}, "megapixels"),
    ],
)
async def test_params_have_the_types_the_spec_promises_strictly(
    client: httpx.AsyncClient, alice: dict[str, str], params: dict[str, Any], field: str
) -> None:
    resp = await client.post("/generate", json={"prompt": "fox", "params": params}, headers=alice)

    field_error(resp, ["body", "params", field])


async def test_a_whole_number_written_as_a_float_is_an_integer_as_json_schema_says(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    resp = await client.post(
        "/generate", json={"prompt": "fox", "params": {"num_outputs": 2.0}}, headers=alice
    )

    assert resp.status_code == 202, resp.text
    status = await client.get(resp.json()["status_url"], headers=alice)
    assert status.json()["params"]["num_outputs"] == 2


@pytest.mark.parametrize(
    "key",
    [
        "",
        "x" * 256,
        "caf\u00e9",  # not ASCII
        "tab\there",
    ],
)
async def test_an_idempotency_key_is_1_to_255_printable_ascii_characters(
    client: httpx.AsyncClient, alice: dict[str, str], db: Database, key: str
) -> None:
    headers = [*alice.items(), ("Idempotency-Key", key.encode("utf-8"))]

    resp = await client.post("/generate", json={"prompt": "fox"}, headers=headers)

    field_error(resp, ["header", "Idempotency-Key"])
    assert await job_count(db) == 0


async def test_the_longest_idempotency_key_works(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    key = "k" * 254 + "~"

    first = await client.post(
        "/generate", json={"prompt": "fox"}, headers={**alice, "Idempotency-Key": key}
    )
    again = await client.post(
        "/generate", json={"prompt": "fox"}, headers={**alice, "Idempotency-Key": key}
    )

    assert (first.status_code, again.status_code) == (202, 202)
    assert first.json()["job_id"] == again.json()["job_id"]


async def test_a_body_over_the_limit_is_a_json_413_before_parsing(
    client: httpx.AsyncClient, alice: dict[str, str], db: Database
) -> None:
    big = b'{"prompt": "' + b"x" * (10 * 1024 * 1024) + b'"}'

    resp = await client.post("/generate", content=big, headers={**alice, **JSON})

    assert resp.status_code == 413
    assert resp.headers["content-type"] == "application/json"
    assert str(LIMIT) in resp.json()["detail"]
    assert await job_count(db) == 0


async def test_a_422_echoes_only_a_short_prefix_of_the_input(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    resp = await client.post(
        "/generate",
        json={"prompt": "fox", "params": {"aspect_ratio": "9" * 50_000}},
        headers=alice,
    )

    error = field_error(resp, ["body", "params", "aspect_ratio"])
    assert error["input"] == "9" * ECHO_MAX_CHARS + "…"
    assert len(resp.content) < 1000


async def test_a_body_that_is_not_utf8_is_a_422(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    resp = await client.post(
        "/generate", content=b'{"prompt": "caf\xe9"}', headers={**alice, **JSON}
    )

    error = field_error(resp, ["body"])
    assert error["type"] == "json_invalid"


async def test_an_empty_model_is_refused_not_taken_for_the_default(
    client: httpx.AsyncClient, alice: dict[str, str], db: Database
) -> None:
    resp = await client.post("/generate", json={"prompt": "fox", "model": ""}, headers=alice)

    assert "Unknown model" in field_error(resp, ["body", "model"])["msg"]
    assert await job_count(db) == 0
