"""ReplicateClient against the real mock (a uvicorn process), fault by fault.

Faults are queued through the mock's /_mock/faults control endpoint, so each error path is
driven deterministically; one mock process serves the module and is reset before each test.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from PIL import Image
from prometheus_client import REGISTRY, generate_latest

from core.replicate import (
    CreateOutcomeUnknown,
    DownloadTooLarge,
    PermanentError,
    Prediction,
    PredictionFailed,
    ReplicateClient,
    ReplicateSettings,
    TransientError,
    parse_retry_after,
)
from core.webhooks import decode_secret
from testkit.processes import ServiceProcess, free_port, run_uvicorn

TOKEN = "client-test-token"
FLUX = "black-forest-labs/flux-schnell"
PROMPT = {"prompt": "a red fox in snow"}


@pytest.fixture(scope="module")
def mock() -> Iterator[ServiceProcess]:
    env = {
        "REPLICATE_MOCK_API_TOKENS": TOKEN,
        "REPLICATE_MOCK_LATENCY_SECONDS": "0.2",
        "REPLICATE_MOCK_PAGE_SIZE": "2",
    }
    with run_uvicorn("replicate_mock.app:create_app", env=env) as proc:
        yield proc


@pytest.fixture
async def control(mock: ServiceProcess) -> AsyncIterator[httpx.AsyncClient]:
    """Talks to the mock's test controls; resets it so each test starts clean."""
    async with httpx.AsyncClient(
        base_url=f"{mock.base_url}/_mock", headers={"Authorization": f"Bearer {TOKEN}"}
    ) as http:
        (await http.post("/reset")).raise_for_status()
        yield http


@pytest.fixture
async def client(
    mock: ServiceProcess, control: httpx.AsyncClient
) -> AsyncIterator[ReplicateClient]:
    assert mock.base_url
    async with ReplicateClient(base_url=mock.base_url, api_token=TOKEN, timeout=5) as c:
        yield c


async def queue(control: httpx.AsyncClient, **body: Any) -> None:
    (await control.post("/faults", json=body)).raise_for_status()


async def stats(control: httpx.AsyncClient) -> dict[str, Any]:
    body: dict[str, Any] = (await control.get("/stats")).json()
    return body


async def until_terminal(client: ReplicateClient, prediction_id: str) -> Prediction:
    """Poll quickly until the prediction has finished (the mock takes 0.2 s)."""
    for _ in range(500):
        prediction = await client.get_prediction(prediction_id)
        if prediction.is_terminal:
            return prediction
        await asyncio.sleep(0.02)
    raise AssertionError(f"prediction {prediction_id} did not finish")


# -- the happy paths -----------------------------------------------------------------------


async def test_create_get_and_download(client: ReplicateClient) -> None:
    created = await client.create_prediction(model=FLUX, input={**PROMPT, "num_outputs": 2})
    assert created.status == "starting"
    assert not created.is_terminal
    assert created.version == "hidden"
    assert created.input == {**PROMPT, "num_outputs": 2}

    fetched = await client.get_prediction(created.id)
    assert fetched.id == created.id

    done = await until_terminal(client, created.id)
    assert done.status == "succeeded"
    assert done.is_terminal
    assert done.completed_at is not None
    assert done.created_at is not None
    assert done.completed_at > done.created_at
    assert done.metrics is not None
    assert done.logs is not None
    assert done.logs.startswith("Using seed:")
    urls = done.output_urls()
    assert len(urls) == 2

    body, content_type = await client.download(urls[0], max_bytes=10_000_000)
    assert content_type == "image/webp"
    assert Image.open(io.BytesIO(body)).size == (1024, 1024)


async def test_create_by_version_and_with_wait(client: ReplicateClient) -> None:
    by_version = await client.create_prediction(version=FLUX, input=PROMPT, wait=5)
    assert by_version.status == "succeeded"  # held until done
    assert by_version.model == FLUX
    assert len(by_version.output_urls()) == 1


async def test_cancel(client: ReplicateClient, control: httpx.AsyncClient) -> None:
    await queue(control, latency_seconds=30)
    created = await client.create_prediction(model=FLUX, input=PROMPT)
    canceled = await client.cancel_prediction(created.id)
    assert canceled.status == "canceled"
    assert canceled.is_terminal


async def test_failed_prediction_is_a_permanent_error_with_its_message(
    client: ReplicateClient, control: httpx.AsyncClient
) -> None:
    await queue(control, next={"create": ["fail"]})
    created = await client.create_prediction(model=FLUX, input=PROMPT)
    done = await until_terminal(client, created.id)
    assert done.status == "failed"
    failed = PredictionFailed(done)  # what the worker raises for it
    assert failed.detail == done.error
    assert failed.prediction is done
    assert isinstance(failed, PermanentError)


async def test_list_follows_cursors_and_filters(client: ReplicateClient) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    ids = [(await client.create_prediction(model=FLUX, input=PROMPT)).id for _ in range(5)]
    listed = [p.id async for p in client.list_predictions(created_after=before)]
    assert listed == ids[::-1]  # 3 pages of 2, newest first

    third = await client.get_prediction(ids[2])
    assert third.created_at is not None
    newer = [p.id async for p in client.list_predictions(created_after=third.created_at)]
    assert newer == [ids[4], ids[3]]
    older = [p.id async for p in client.list_predictions(created_before=third.created_at)]
    assert older == [ids[1], ids[0]]


async def test_webhook_secret_is_the_accounts_signing_key(
    client: ReplicateClient, control: httpx.AsyncClient
) -> None:
    key = await client.get_webhook_secret()
    assert len(decode_secret(key)) == 32  # whsec_ and 32 base64 bytes, like Replicate's
    assert await client.get_webhook_secret() == key  # one per account, until rotated
    assert (await stats(control))["calls"]["webhook_secret"] == 2


async def test_webhook_secret_with_a_wrong_token_is_permanent_401(mock: ServiceProcess) -> None:
    assert mock.base_url
    async with ReplicateClient(base_url=mock.base_url, api_token="nope") as bad:
        with pytest.raises(PermanentError) as error:
            await bad.get_webhook_secret()
    assert error.value.status == 401


# -- permanent errors ----------------------------------------------------------------------


async def test_wrong_token_is_permanent_401(mock: ServiceProcess) -> None:
    assert mock.base_url
    async with ReplicateClient(base_url=mock.base_url, api_token="nope") as bad:
        with pytest.raises(PermanentError) as error:
            await bad.create_prediction(model=FLUX, input=PROMPT)
    assert error.value.status == 401
    assert error.value.detail == "You did not pass a valid authentication token"


async def test_unknown_prediction_is_permanent_404(client: ReplicateClient) -> None:
    with pytest.raises(PermanentError) as error:
        await client.get_prediction("doesnotexist")
    assert error.value.status == 404


async def test_invalid_input_is_permanent_422_with_detail(client: ReplicateClient) -> None:
    with pytest.raises(PermanentError) as error:
        await client.create_prediction(model=FLUX, input={"prompt": "x", "num_outputs": 7})
    assert not isinstance(error.value, TransientError)
    assert error.value.status == 422
    assert "Must be less than or equal to 4" in error.value.detail
    assert error.value.invalid_fields[0]["field"] == "input.num_outputs"


# -- transient errors ----------------------------------------------------------------------


async def test_429_is_transient_with_retry_after_and_creates_nothing(
    client: ReplicateClient, control: httpx.AsyncClient
) -> None:
    await queue(control, retry_after_seconds=7, next={"create": ["429"]})
    with pytest.raises(TransientError) as error:
        await client.create_prediction(model=FLUX, input=PROMPT)
    assert not isinstance(error.value, CreateOutcomeUnknown)
    assert error.value.retry_after == 7
    assert (await stats(control))["predictions_created"] == 0


async def test_500_on_create_is_outcome_unknown(
    client: ReplicateClient, control: httpx.AsyncClient
) -> None:
    await queue(control, next={"create": ["500"]})
    with pytest.raises(CreateOutcomeUnknown):
        await client.create_prediction(model=FLUX, input=PROMPT)


async def test_500_after_create_is_outcome_unknown_and_findable(
    client: ReplicateClient, control: httpx.AsyncClient
) -> None:
    started = datetime.now(UTC) - timedelta(seconds=1)
    await queue(control, next={"create": ["500_after_create"]})
    with pytest.raises(CreateOutcomeUnknown):
        await client.create_prediction(model=FLUX, input={"prompt": "the lost one"})
    found = [p async for p in client.list_predictions(created_after=started)]
    assert [p.input["prompt"] for p in found] == ["the lost one"]


async def test_500_on_get_is_transient_not_outcome_unknown(
    client: ReplicateClient, control: httpx.AsyncClient
) -> None:
    created = await client.create_prediction(model=FLUX, input=PROMPT)
    await queue(control, next={"get": ["500"]})
    with pytest.raises(TransientError) as error:
        await client.get_prediction(created.id)
    assert not isinstance(error.value, CreateOutcomeUnknown)


async def test_read_timeout_on_create_is_outcome_unknown(
    mock: ServiceProcess, control: httpx.AsyncClient
) -> None:
    assert mock.base_url
    await queue(control, slow_seconds=2, next={"create": ["slow"]})
    async with ReplicateClient(base_url=mock.base_url, api_token=TOKEN, timeout=0.3) as impatient:
        with pytest.raises(CreateOutcomeUnknown):
            await impatient.create_prediction(model=FLUX, input=PROMPT)
    assert (await stats(control))["predictions_created"] == 1  # it exists after all


async def test_connection_refused_is_transient_not_outcome_unknown() -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    async with ReplicateClient(base_url=nobody, api_token=TOKEN, connect_timeout=1) as client:
        with pytest.raises(TransientError) as error:
            await client.create_prediction(model=FLUX, input=PROMPT)
    assert not isinstance(error.value, CreateOutcomeUnknown)


# -- downloads -----------------------------------------------------------------------------


async def test_download_refuses_files_over_the_cap(client: ReplicateClient) -> None:
    done = await client.create_prediction(model=FLUX, input=PROMPT, wait=5)
    with pytest.raises(DownloadTooLarge):
        await client.download(done.output_urls()[0], max_bytes=100)


async def test_download_sends_the_token_only_to_trusted_hosts() -> None:
    seen: dict[str, str | None] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen[request.url.host] = request.headers.get("authorization")
        return httpx.Response(200, content=b"img", headers={"content-type": "image/png"})

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    client = ReplicateClient(base_url="https://api.replicate.com", api_token=TOKEN, http=http)
    for url in (
        "https://api.replicate.com/f",
        "https://replicate.delivery/xezq/a/out-0.png",
        "https://evil.example/out-0.png",
    ):
        assert await client.download(url, max_bytes=10) == (b"img", "image/png")
    await http.aclose()
    assert seen == {
        "api.replicate.com": f"Bearer {TOKEN}",
        "replicate.delivery": f"Bearer {TOKEN}",
        "evil.example": None,
    }


# -- the model and helpers -----------------------------------------------------------------


def test_output_urls_accepts_one_url_or_a_list() -> None:
    base = {"id": "x", "status": "succeeded", "unknown_key": 1}
    assert Prediction.model_validate({**base, "output": "https://a/b.png"}).output_urls() == [
        "https://a/b.png"
    ]
    many = Prediction.model_validate({**base, "output": ["https://a/0", "https://a/1"]})
    assert many.output_urls() == ["https://a/0", "https://a/1"]
    assert Prediction.model_validate({**base, "output": None}).output_urls() == []
    aborted = Prediction.model_validate({"id": "y", "status": "aborted"})
    assert aborted.is_terminal


def test_retry_after_from_header_date_or_detail() -> None:
    assert parse_retry_after(httpx.Response(429, headers={"retry-after": "3"})) == 3
    text = httpx.Response(429, json={"detail": "Request was throttled. resets in ~30s."})
    assert parse_retry_after(text) == 30
    assert parse_retry_after(httpx.Response(503)) is None


async def test_settings_come_from_prefixed_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPLICATE_BASE_URL", "https://api.replicate.com")
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_secret")
    monkeypatch.setenv("REPLICATE_WAIT_SECONDS", "10")
    settings = ReplicateSettings(_env_file=None)
    assert settings.replicate_base_url == "https://api.replicate.com"
    assert settings.replicate_api_token.get_secret_value() == "r8_secret"
    assert "r8_secret" not in repr(settings)
    assert settings.replicate_wait_seconds == 10
    async with ReplicateClient.from_settings(settings) as client:
        assert client.base_url == "https://api.replicate.com"


async def test_create_needs_exactly_one_of_model_or_version(client: ReplicateClient) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        await client.create_prediction(model=FLUX, version="v", input=PROMPT)
    with pytest.raises(ValueError, match="owner/name"):
        await client.create_prediction(model="flux", input=PROMPT)


async def test_download_does_not_follow_redirects() -> None:
    """A caller checks the output URL's host; a redirect must not carry the fetch elsewhere."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:1/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        async with ReplicateClient(base_url="http://127.0.0.1:1", api_token="t") as client:
            with pytest.raises(PermanentError) as caught:
                await client.download(
                    f"http://127.0.0.1:{server.server_port}/out-0.png", max_bytes=1000
                )
        assert caught.value.status == 302
    finally:
        server.shutdown()


# -- metrics -------------------------------------------------------------------------------


def calls(endpoint: str, status: str) -> float:
    value = REGISTRY.get_sample_value(
        "replicate_request_duration_seconds_count", {"endpoint": endpoint, "status": status}
    )
    return value or 0.0


async def test_calls_are_counted_by_endpoint_and_status_never_by_id(
    client: ReplicateClient,
) -> None:
    before = {
        key: calls(*key)
        for key in [("create", "201"), ("get", "200"), ("get", "404"), ("download", "200")]
    }
    created = await client.create_prediction(model=FLUX, input=PROMPT, wait=5)
    await client.get_prediction(created.id)
    with pytest.raises(PermanentError):
        await client.get_prediction("doesnotexist")
    await client.download(created.output_urls()[0], max_bytes=10_000_000)
    assert {key: calls(*key) - count for key, count in before.items()} == {
        ("create", "201"): 1,
        ("get", "200"): 1,
        ("get", "404"): 1,
        ("download", "200"): 1,
    }

    refused = calls("create", "error")
    nobody = f"http://127.0.0.1:{free_port()}"
    async with ReplicateClient(base_url=nobody, api_token=TOKEN, connect_timeout=1) as offline:
        with pytest.raises(TransientError):
            await offline.create_prediction(model=FLUX, input=PROMPT)
    assert calls("create", "error") == refused + 1
    assert created.id not in generate_latest(REGISTRY).decode()
