"""The mock's HTTP protocol, in process (ASGI): lifecycle, waits, cancel, list, errors, faults."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from PIL import Image
from pydantic import ValidationError

from core.webhooks import decode_secret, generate_secret
from replicate_mock.app import create_app
from replicate_mock.inputs import validate_flux_input
from replicate_mock.settings import MockSettings
from replicate_mock.state import version_id
from replicate_mock.store import PredictionRecord

TOKEN = "mock-token"
FLUX = "black-forest-labs/flux-schnell"
CREATE = f"/v1/models/{FLUX}/predictions"
LATENCY = 0.2


def make_client(**settings: Any) -> httpx.AsyncClient:
    config = {"replicate_mock_latency_seconds": LATENCY, **settings}
    app = create_app(MockSettings(**config))
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://mock.test",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(replicate_mock_page_size=2) as c:
        yield c


async def create(client: httpx.AsyncClient, **input: Any) -> dict[str, Any]:
    response = await client.post(CREATE, json={"input": {"prompt": "a fox", **input}})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def until_terminal(client: httpx.AsyncClient, prediction_id: str) -> dict[str, Any]:
    while True:
        body: dict[str, Any] = (await client.get(f"/v1/predictions/{prediction_id}")).json()
        if body["status"] in ("succeeded", "failed", "canceled"):
            return body
        await asyncio.sleep(0.02)


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def test_lifecycle_moves_from_starting_to_succeeded_with_timestamps(
    client: httpx.AsyncClient,
) -> None:
    created = await create(client, seed=7)
    assert created["status"] == "starting"
    assert created["version"] == "hidden"
    assert created["model"] == FLUX
    assert created["input"] == {"prompt": "a fox", "seed": 7}  # as sent, no defaults
    assert created["output"] is None
    assert created["logs"] == ""
    assert "started_at" not in created
    assert len(created["id"]) == 26
    assert created["id"].isalnum()
    assert created["id"].islower()
    assert created["urls"]["get"] == f"http://mock.test/v1/predictions/{created['id']}"
    assert created["created_at"].endswith("Z")

    seen = {created["status"]}
    while True:
        body = (await client.get(f"/v1/predictions/{created['id']}")).json()
        seen.add(body["status"])
        if body["status"] == "processing":
            assert body["logs"].startswith("Using seed: 7\n")
            assert body["output"] is None
        if body["status"] == "succeeded":
            break
        await asyncio.sleep(0.01)
    assert {"starting", "succeeded"} <= seen
    assert ts(body["created_at"]) <= ts(body["started_at"]) <= ts(body["completed_at"])
    assert body["metrics"]["total_time"] == pytest.approx(LATENCY, abs=0.01)
    assert body["data_removed"] is False
    assert body["error"] is None
    assert body["output"] == [f"http://mock.test/files/{body['id']}/out-0.webp"]


async def test_prefer_wait_returns_the_finished_prediction(client: httpx.AsyncClient) -> None:
    response = await client.post(
        CREATE, json={"input": {"prompt": "x", "num_outputs": 2}}, headers={"Prefer": "wait=5"}
    )
    assert response.status_code == 201
    assert response.headers["preference-applied"] == "wait=5"
    body = response.json()
    assert body["status"] == "succeeded"
    assert len(body["output"]) == 2


async def test_prefer_wait_expiry_returns_starting() -> None:
    async with make_client(replicate_mock_latency_seconds=30) as client:
        response = await client.post(
            CREATE, json={"input": {"prompt": "x"}}, headers={"Prefer": "wait=1"}
        )
        body = response.json()
        assert body["status"] == "starting"
        assert body["output"] is None
        assert response.headers["preference-applied"] == "wait=1"
        assert response.headers["location"].endswith(f"/v1/predictions/{body['id']}")


async def test_cancel_running_then_finished_is_unchanged(client: httpx.AsyncClient) -> None:
    await client.post("/_mock/faults", json={"latency_seconds": 30})
    running = await create(client)
    canceled = (await client.post(f"/v1/predictions/{running['id']}/cancel")).json()
    assert canceled["status"] == "canceled"
    assert canceled["completed_at"]
    assert canceled["metrics"]
    assert canceled["output"] is None
    again = (await client.get(f"/v1/predictions/{running['id']}")).json()
    assert again["status"] == "canceled"

    await client.post("/_mock/faults", json={"latency_seconds": LATENCY})
    done = await until_terminal(client, (await create(client))["id"])
    after = (await client.post(f"/v1/predictions/{done['id']}/cancel")).json()
    assert after["status"] == "succeeded"
    assert after["completed_at"] == done["completed_at"]


async def test_unknown_prediction_is_404_problem(client: httpx.AsyncClient) -> None:
    for response in (
        await client.get("/v1/predictions/nope"),
        await client.post("/v1/predictions/nope/cancel"),
    ):
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["detail"] == "Not found."


async def test_list_is_newest_first_with_cursors_and_filters(client: httpx.AsyncClient) -> None:
    ids = [(await create(client))["id"] for _ in range(5)]
    first = (await client.get("/v1/predictions")).json()
    assert first["previous"] is None
    assert [p["id"] for p in first["results"]] == ids[::-1][:2]
    assert first["next"].startswith("http://mock.test/v1/predictions?")  # absolute

    collected, url = [], "/v1/predictions"
    while url:
        page = (await client.get(url)).json()
        collected += [p["id"] for p in page["results"]]
        url = page["next"]
    assert collected == ids[::-1]

    second = (await client.get(first["next"])).json()
    back = (await client.get(second["previous"])).json()
    assert [p["id"] for p in back["results"]] == [p["id"] for p in first["results"]]

    middle = (await client.get(f"/v1/predictions/{ids[2]}")).json()["created_at"]
    after = (await client.get("/v1/predictions", params={"created_after": middle})).json()
    assert [p["id"] for p in after["results"]] == ids[:2:-1]
    before = (await client.get("/v1/predictions", params={"created_before": middle})).json()
    assert [p["id"] for p in before["results"]] == [ids[1], ids[0]]
    oldest = (await client.get(f"/v1/predictions/{ids[0]}")).json()["created_at"]
    newer = (await client.get("/v1/predictions", params={"created_after": oldest})).json()
    assert "created_after=" in newer["next"]  # filters survive paging
    rest = (await client.get(newer["next"])).json()
    assert [p["id"] for p in newer["results"] + rest["results"]] == ids[:0:-1]

    bad = await client.get("/v1/predictions", params={"cursor": "!!"})
    assert bad.status_code == 400


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Token {TOKEN}x"}],
)
async def test_api_requires_a_valid_bearer_token(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    client.headers.pop("Authorization")
    response = await client.post(CREATE, json={"input": {"prompt": "x"}}, headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "title": "Unauthenticated",
        "detail": "You did not pass a valid authentication token",
        "status": 401,
    }
    assert (await client.get("/_mock/stats", headers=headers)).status_code == 401


async def test_several_tokens_are_accepted() -> None:
    async with make_client(replicate_mock_api_tokens="a, b") as client:
        for token in ("a", "b"):
            response = await client.post(
                CREATE,
                json={"input": {"prompt": "x"}},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert response.status_code == 201


@pytest.mark.parametrize(
    ("input", "kind", "field", "description"),
    [
        ({}, "required", "input", "prompt is required"),
        ({"prompt": 3}, "invalid_type", "input.prompt", "Expected: string, given: integer"),
        ({"aspect_ratio": "2:1"}, "enum", "input.aspect_ratio", '"1:1", "16:9"'),
        ({"num_outputs": 0}, "number_gte", "input.num_outputs", "greater than or equal to 1"),
        ({"num_outputs": 5}, "number_lte", "input.num_outputs", "less than or equal to 4"),
        ({"num_inference_steps": 5}, "number_lte", "input.num_inference_steps", "equal to 4"),
        ({"num_outputs": True}, "invalid_type", "input.num_outputs", "Expected: integer"),
        ({"seed": 1.5}, "invalid_type", "input.seed", "Expected: integer, given: number"),
        ({"output_format": "gif"}, "enum", "input.output_format", '"webp", "jpg", "png"'),
        ({"output_quality": 101}, "number_lte", "input.output_quality", "equal to 100"),
        ({"output_quality": -1}, "number_gte", "input.output_quality", "equal to 0"),
        ({"go_fast": "yes"}, "invalid_type", "input.go_fast", "Expected: boolean"),
        ({"disable_safety_checker": 1}, "invalid_type", "input.disable_safety_checker", "boolean"),
        ({"megapixels": "2"}, "enum", "input.megapixels", '"1", "0.25"'),
        ({"width": 512}, "additional_property_not_allowed", "input", "property width is not"),
    ],
)
async def test_input_validation_422_with_invalid_fields(
    client: httpx.AsyncClient, input: dict[str, Any], kind: str, field: str, description: str
) -> None:
    body = input if input == {} or "prompt" in input else {"prompt": "x", **input}
    response = await client.post(CREATE, json={"input": body})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["title"] == "Input validation failed"
    assert problem["status"] == 422
    [invalid] = problem["invalid_fields"]
    assert invalid["type"] == kind
    assert invalid["field"] == field
    assert description in invalid["description"]
    assert f"- {field}: {invalid['description']}\n" in problem["detail"]
    stats = (await client.get("/_mock/stats")).json()
    assert stats["predictions_created"] == 0


async def test_top_level_body_is_strict(client: httpx.AsyncClient) -> None:
    extra = await client.post(
        "/v1/predictions", json={"version": FLUX, "input": {"prompt": "x"}, "model": FLUX}
    )
    assert extra.status_code == 422
    assert "Additional property model is not allowed" in extra.json()["detail"]
    missing = await client.post("/v1/predictions", json={"input": {"prompt": "x"}})
    assert missing.status_code == 422
    assert "version is required" in missing.json()["detail"]
    on_model = await client.post(CREATE, json={"input": {"prompt": "x"}, "version": "abc"})
    assert "Additional property version is not allowed" in on_model.json()["detail"]


async def test_create_by_version_forms(client: httpx.AsyncClient) -> None:
    vid = version_id(FLUX)
    for ref, expected in ((vid, vid), (f"{FLUX}:{vid}", vid), (FLUX, "hidden")):
        response = await client.post(
            "/v1/predictions", json={"version": ref, "input": {"prompt": "x"}}
        )
        assert response.status_code == 201, response.text
        assert response.json()["version"] == expected
        assert response.json()["model"] == FLUX
    unknown = await client.post(
        "/v1/predictions", json={"version": "0" * 64, "input": {"prompt": "x"}}
    )
    assert unknown.status_code == 422
    assert unknown.json()["title"] == "Invalid version or not permitted"
    assert (
        await client.post("/v1/models/no/such/predictions", json={"input": {"prompt": "x"}})
    ).status_code == 404
    version = (await client.get(f"/v1/models/{FLUX}/versions/{vid}")).json()
    assert version["id"] == vid
    assert isinstance(version["cog_version"], str)


@pytest.mark.parametrize(
    ("input", "size", "pil_format", "content_type"),
    [
        ({}, (1024, 1024), "WEBP", "image/webp"),
        ({"aspect_ratio": "16:9", "output_format": "png"}, (1344, 768), "PNG", "image/png"),
        ({"aspect_ratio": "9:21", "output_format": "jpg"}, (640, 1536), "JPEG", "image/jpeg"),
        ({"aspect_ratio": "4:5", "megapixels": "0.25"}, (448, 544), "WEBP", "image/webp"),
    ],
)
async def test_outputs_are_real_images_of_the_right_size_and_format(
    client: httpx.AsyncClient,
    input: dict[str, Any],
    size: tuple[int, int],
    pil_format: str,
    content_type: str,
) -> None:
    done = await until_terminal(client, (await create(client, **input))["id"])
    [url] = done["output"]
    response = await client.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    image = Image.open(io.BytesIO(response.content))
    image.load()
    assert image.format == pil_format
    assert image.size == size


async def test_images_are_deterministic_for_prompt_and_seed(client: httpx.AsyncClient) -> None:
    async def files(prompt: str, seed: int) -> list[bytes]:
        done = await until_terminal(
            client, (await create(client, prompt=prompt, seed=seed, num_outputs=2))["id"]
        )
        return [(await client.get(url)).content for url in done["output"]]

    first, again, other_seed = await files("fox", 1), await files("fox", 1), await files("fox", 2)
    assert first == again
    assert first[0] != first[1]  # each index differs
    assert first[0] != other_seed[0]


async def test_files_404_before_success_or_for_wrong_names(client: httpx.AsyncClient) -> None:
    await client.post("/_mock/faults", json={"latency_seconds": 30})
    running = await create(client)
    assert (await client.get(f"/files/{running['id']}/out-0.webp")).status_code == 404
    await client.post("/_mock/faults", json={"latency_seconds": LATENCY})
    done = await until_terminal(client, (await create(client))["id"])
    assert (await client.get(f"/files/{done['id']}/out-1.webp")).status_code == 404
    assert (await client.get(f"/files/{done['id']}/out-0.png")).status_code == 404
    public = await client.get(done["output"][0], headers={"Authorization": ""})
    assert public.status_code == 200  # files are public by default


async def test_files_can_require_the_token() -> None:
    async with make_client(replicate_mock_files_require_auth=True) as client:
        done = await until_terminal(client, (await create(client))["id"])
        url = done["output"][0]
        assert (await client.get(url)).status_code == 200
        assert (await client.get(url, headers={"Authorization": ""})).status_code == 401


async def test_public_url_setting_shapes_output_urls() -> None:
    async with make_client(replicate_mock_public_url="http://cdn.example:9") as client:
        done = await until_terminal(client, (await create(client))["id"])
        assert done["output"][0].startswith("http://cdn.example:9/files/")


# -- faults -------------------------------------------------------------------------------


async def stats(client: httpx.AsyncClient) -> dict[str, Any]:
    body: dict[str, Any] = (await client.get("/_mock/stats")).json()
    return body


async def test_queued_429_creates_nothing_and_carries_retry_after(
    client: httpx.AsyncClient,
) -> None:
    await client.post(
        "/_mock/faults", json={"retry_after_seconds": 7, "next": {"create": ["429", "429"]}}
    )
    for _ in range(2):
        response = await client.post(CREATE, json={"input": {"prompt": "x"}})
        assert response.status_code == 429
        assert response.headers["retry-after"] == "7"
        assert "resets in ~7s" in response.json()["detail"]
    assert (await client.post(CREATE, json={"input": {"prompt": "x"}})).status_code == 201
    counts = await stats(client)
    assert counts["predictions_created"] == 1
    assert counts["faults"] == {"429": 2}
    assert counts["calls"]["create"] == 3


async def test_queued_500_creates_nothing(client: httpx.AsyncClient) -> None:
    await client.post("/_mock/faults", json={"next": {"create": ["500"], "get": ["500"]}})
    response = await client.post(CREATE, json={"input": {"prompt": "x"}})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert (await stats(client))["predictions_stored"] == 0
    created = await create(client)
    assert (await client.get(f"/v1/predictions/{created['id']}")).status_code == 500
    assert (await client.get(f"/v1/predictions/{created['id']}")).status_code == 200


async def test_500_after_create_leaves_a_prediction_behind(client: httpx.AsyncClient) -> None:
    await client.post("/_mock/faults", json={"next": {"create": ["500_after_create"]}})
    response = await client.post(CREATE, json={"input": {"prompt": "hidden one"}})
    assert response.status_code == 500
    listed = (await client.get("/v1/predictions")).json()["results"]
    assert [p["input"]["prompt"] for p in listed] == ["hidden one"]
    assert (await stats(client))["faults"] == {"500_after_create": 1}


async def test_slow_create_still_creates(client: httpx.AsyncClient) -> None:
    await client.post(
        "/_mock/faults", json={"slow_seconds": 0.1, "next": {"create": ["slow"], "list": ["slow"]}}
    )
    created = await create(client)
    assert created["id"]
    assert (await client.get("/v1/predictions")).status_code == 200
    assert (await stats(client))["faults"] == {"slow": 2}


async def test_fail_fault_ends_the_prediction_failed(client: httpx.AsyncClient) -> None:
    await client.post("/_mock/faults", json={"next": {"create": ["fail"]}})
    failed = await until_terminal(client, (await create(client))["id"])
    assert failed["status"] == "failed"
    assert failed["error"]
    assert failed["output"] is None
    assert failed["completed_at"]


async def test_fault_rates_from_settings_and_control() -> None:
    async with make_client(replicate_mock_fault_429_rate=1.0) as client:
        assert (await client.post(CREATE, json={"input": {"prompt": "x"}})).status_code == 429
        await client.post("/_mock/faults", json={"rate_429": 0, "rate_fail": 1})
        failed = await until_terminal(client, (await create(client))["id"])
        assert failed["status"] == "failed"
        await client.post("/_mock/faults", json={"rate_fail": 0, "rate_500": 1})
        assert (await client.get("/v1/predictions")).status_code == 500
        state = (await client.post("/_mock/reset")).json()
        assert state["rates"]["429"] == 1.0
        assert state["rates"]["500"] == 0


async def test_create_only_faults_are_refused_elsewhere(client: httpx.AsyncClient) -> None:
    response = await client.post("/_mock/faults", json={"next": {"get": ["fail"]}})
    assert response.status_code == 422


# -- webhook fields and secret (deliveries: test_replicate_mock_webhooks.py) --------------


@pytest.mark.parametrize(
    ("fields", "kind", "field", "description"),
    [
        (
            {"webhook": "https://example.test/h", "webhook_events_filter": ["start", "done"]},
            "enum",
            "webhook_events_filter.1",
            'must be one of the following: "start", "output", "logs", "completed"',
        ),
        ({"webhook_events_filter": "completed"}, "invalid_type", "webhook_events_filter", "array"),
        ({"webhook_events_filter": [3]}, "enum", "webhook_events_filter.0", '"completed"'),
        ({"webhook": 3}, "invalid_type", "webhook", "Expected: string, given: integer"),
        ({"webhook": None}, "invalid_type", "webhook", "given: null"),
        ({"webhook": "ftp://example.test/h"}, "format", "webhook", "format 'uri'"),
        ({"webhook": "https:///no-host"}, "format", "webhook", "format 'uri'"),
        ({"webhook": "http://[::1"}, "format", "webhook", "format 'uri'"),
    ],
)
async def test_webhook_fields_are_validated_like_replicate(
    client: httpx.AsyncClient, fields: dict[str, Any], kind: str, field: str, description: str
) -> None:
    for path, extra in ((CREATE, {}), ("/v1/predictions", {"version": FLUX})):
        body = {"input": {"prompt": "x"}, **extra, **fields}
        response = await client.post(path, json=body)
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        [invalid] = response.json()["invalid_fields"]
        assert (invalid["type"], invalid["field"]) == (kind, field)
        assert description in invalid["description"]
    assert (await stats(client))["predictions_created"] == 0


async def test_webhook_and_input_problems_are_reported_together(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(CREATE, json={"input": {}, "webhook_events_filter": ["x"]})
    fields = [f["field"] for f in response.json()["invalid_fields"]]
    assert fields == ["webhook_events_filter.0", "input"]


async def test_filter_without_webhook_is_echoed_and_sends_nothing(
    client: httpx.AsyncClient,
) -> None:
    created = (
        await client.post(
            CREATE, json={"input": {"prompt": "x"}, "webhook_events_filter": ["completed"]}
        )
    ).json()
    assert created["webhook_events_filter"] == ["completed"]
    assert "webhook" not in created
    assert (await stats(client))["webhooks"]["following"] == 0


async def test_webhook_secret_is_generated_once_per_app(client: httpx.AsyncClient) -> None:
    key = (await client.get("/v1/webhooks/default/secret")).json()["key"]
    assert len(decode_secret(key)) == 32
    assert (await client.get("/v1/webhooks/default/secret")).json()["key"] == key
    await client.post("/_mock/reset")
    assert (await client.get("/v1/webhooks/default/secret")).json()["key"] == key
    async with make_client() as other:
        assert (await other.get("/v1/webhooks/default/secret")).json()["key"] != key
    anonymous = await client.get("/v1/webhooks/default/secret", headers={"Authorization": ""})
    assert anonymous.status_code == 401


async def test_webhook_secret_comes_from_the_setting() -> None:
    secret = generate_secret()
    async with make_client(replicate_mock_webhook_secret=secret) as client:
        assert (await client.get("/v1/webhooks/default/secret")).json() == {"key": secret}


@pytest.mark.parametrize(
    "setting",
    [
        {"replicate_mock_webhook_secret": "not-a-secret"},
        {"replicate_mock_webhook_secret": "whsec_!!"},
        {"replicate_mock_webhook_retry_delays_seconds": "1,two"},
        {"replicate_mock_webhook_retry_delays_seconds": "1,-2"},
        {"replicate_mock_webhook_retry_delays_seconds": "nan"},
    ],
)
def test_bad_webhook_settings_are_refused(setting: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        MockSettings(**setting)  # type: ignore[arg-type]


def test_retry_delays_parse() -> None:
    settings = MockSettings(replicate_mock_webhook_retry_delays_seconds=" 0.5, 1 ,2")
    assert settings.webhook_retry_delays == (0.5, 1.0, 2.0)
    assert MockSettings().webhook_retry_delays == (1, 2, 4, 8, 16, 32)


def test_processing_logs_show_denoising_progress_like_cog_flux() -> None:
    params, errors = validate_flux_input({"prompt": "a fox", "num_inference_steps": 4})
    assert params is not None, errors
    start = datetime(2026, 12, 2, 10, 0, 0, tzinfo=UTC)
    record = PredictionRecord(
        id="p",
        seq=1,
        model=FLUX,
        version="hidden",
        input={"prompt": "a fox"},
        params=params,
        seed=42,
        created_at=start - timedelta(seconds=1),
        started_at=start,
        completed_at=start + timedelta(seconds=4),
    )

    def logs_at(seconds: float) -> str:
        body = record.to_json(
            start + timedelta(seconds=seconds), api_base="http://m", files_base="http://m"
        )
        logs: str = body["logs"]
        return logs

    assert logs_at(0.5) == "Using seed: 42\n  0%|          | 0/4 [00:00<?, ?it/s]\n"
    assert logs_at(2.5).splitlines()[-1] == " 50%|█████     | 2/4 [00:02<00:02,  1.00it/s]"
    done = logs_at(5).splitlines()
    assert done[-2:] == [
        "100%|██████████| 4/4 [00:04<00:00,  1.00it/s]",
        "Total safe images: 1 out of 1",
    ]
    assert len(done) == 1 + 5 + 1  # the seed, 0/4 to 4/4, the summary
