"""Conformance: the official `replicate` client (1.0.7) runs predictions against the mock,
started as a real process exactly as `make run` would start it."""

from __future__ import annotations

import io
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image
from replicate.client import Client
from replicate.exceptions import ModelError, ReplicateError

from replicate_mock.state import version_id
from testkit.processes import ServiceProcess, run_uvicorn

TOKEN = "official-client-token"
FLUX = "black-forest-labs/flux-schnell"


@pytest.fixture(scope="module")
def mock() -> Iterator[ServiceProcess]:
    env = {"REPLICATE_MOCK_API_TOKENS": TOKEN, "REPLICATE_MOCK_LATENCY_SECONDS": "0.3"}
    with run_uvicorn("replicate_mock.app:create_app", env=env) as proc:
        yield proc


@pytest.fixture
def client(mock: ServiceProcess) -> Client:
    client = Client(api_token=TOKEN, base_url=mock.base_url)
    client.poll_interval = 0.05
    return client


def fetch_image(url: str) -> Image.Image:
    response = httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    image = Image.open(io.BytesIO(response.content))
    image.load()
    return image


def test_run_official_model_returns_image_urls(client: Client) -> None:
    output = client.run(FLUX, input={"prompt": "a red fox in snow", "num_outputs": 2})
    assert isinstance(output, list)
    assert len(output) == 2
    # http:// URLs are not wrapped in FileOutput by the client: they come back as str.
    assert all(isinstance(url, str) and url.startswith("http://127.0.0.1:") for url in output)
    assert fetch_image(output[0]).size == (1024, 1024)


def test_run_with_version_fetches_the_version(client: Client) -> None:
    output = client.run(f"{FLUX}:{version_id(FLUX)}", input={"prompt": "x", "output_format": "png"})
    assert isinstance(output, list)
    assert fetch_image(output[0]).format == "PNG"


def test_predictions_create_then_wait(client: Client) -> None:
    prediction = client.predictions.create(model=FLUX, input={"prompt": "x", "seed": 3})
    assert prediction.status == "starting"
    prediction.wait()
    assert prediction.status in {"succeeded"}  # `in`: mypy narrowed status to "starting"
    assert prediction.logs.startswith("Using seed: 3")
    assert prediction.metrics["predict_time"] > 0
    assert fetch_image(prediction.output[0]).format == "WEBP"

    again = client.predictions.get(prediction.id)
    assert again.output == prediction.output
    listed = client.predictions.list()
    assert prediction.id in [p.id for p in listed.results]


def test_cancel_via_official_client(client: Client, mock: ServiceProcess) -> None:
    httpx.post(
        f"{mock.base_url}/_mock/faults",
        json={"latency_seconds": 30},
        headers={"Authorization": f"Bearer {TOKEN}"},
    ).raise_for_status()
    try:
        prediction = client.predictions.create(model=FLUX, input={"prompt": "x"})
        prediction.cancel()
        prediction.reload()
        assert prediction.status == "canceled"
    finally:
        httpx.post(
            f"{mock.base_url}/_mock/faults",
            json={"latency_seconds": 0.3},
            headers={"Authorization": f"Bearer {TOKEN}"},
        ).raise_for_status()


def test_errors_surface_as_replicate_errors(client: Client, mock: ServiceProcess) -> None:
    with pytest.raises(ReplicateError) as invalid:
        client.predictions.create(model=FLUX, input={"prompt": "x", "num_outputs": 9})
    assert invalid.value.status == 422
    assert "Must be less than or equal to 4" in (invalid.value.detail or "")

    bad = Client(api_token="wrong", base_url=mock.base_url)
    with pytest.raises(ReplicateError) as unauth:
        bad.predictions.get("whatever")
    assert unauth.value.status == 401
    assert unauth.value.title == "Unauthenticated"

    httpx.post(
        f"{mock.base_url}/_mock/faults",
        json={"next": {"create": ["fail"]}},
        headers={"Authorization": f"Bearer {TOKEN}"},
    ).raise_for_status()
    with pytest.raises(ModelError):
        client.run(FLUX, input={"prompt": "x"})


def test_get_retries_through_injected_429(client: Client, mock: ServiceProcess) -> None:
    prediction = client.predictions.create(model=FLUX, input={"prompt": "x"})
    httpx.post(
        f"{mock.base_url}/_mock/faults",
        json={"retry_after_seconds": 0, "next": {"get": ["429", "429"]}},
        headers={"Authorization": f"Bearer {TOKEN}"},
    ).raise_for_status()
    # The client's RetryTransport retries GETs on 429, so the faults are invisible here.
    assert client.predictions.get(prediction.id).id == prediction.id


def test_webhook_secret_via_official_client(client: Client, mock: ServiceProcess) -> None:
    secret = client.webhooks.default.secret()
    assert secret.key.startswith("whsec_")
    direct = httpx.get(
        f"{mock.base_url}/v1/webhooks/default/secret",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert direct.json() == {"key": secret.key}
