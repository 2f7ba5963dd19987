"""GET /metrics after real traffic: requests counted by route template and status."""

from __future__ import annotations

import uuid

import httpx
from prometheus_client.parser import text_string_to_metric_families

from .conftest import NewPet


async def request_count(client: httpx.AsyncClient, **labels: str) -> float:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    for family in text_string_to_metric_families(response.text):
        if family.name == "http_request_duration_seconds":
            for sample in family.samples:
                if sample.name.endswith("_count") and labels.items() <= sample.labels.items():
                    return sample.value
    return 0.0


async def test_requests_are_counted_by_route_template_never_by_id(
    client: httpx.AsyncClient, new_pet: NewPet
) -> None:
    found = {"method": "GET", "route": "/pets/{pet_id}", "status": "200"}
    missing = {"method": "GET", "route": "/pets/{pet_id}", "status": "404"}
    before_found, before_missing = (
        await request_count(client, **found),
        await request_count(client, **missing),
    )
    pet = await new_pet()
    for _ in range(3):
        assert (await client.get(f"/pets/{pet['id']}")).status_code == 200
    assert (await client.get(f"/pets/{uuid.uuid4()}")).status_code == 404
    await client.get("/no/such/path")

    assert await request_count(client, **found) == before_found + 3
    assert await request_count(client, **missing) == before_missing + 1
    text = (await client.get("/metrics")).text
    assert str(pet["id"]) not in text  # ids never become label values
    assert 'route="unmatched"' in text
