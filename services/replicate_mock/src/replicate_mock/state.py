"""Everything the mock remembers, one instance per app (so tests can run several)."""

from __future__ import annotations

import hashlib
import secrets

from fastapi import Request

from core.webhooks import generate_secret
from replicate_mock.faults import Faults, Stats
from replicate_mock.images import ImageCache
from replicate_mock.problems import unauthenticated
from replicate_mock.settings import MockSettings
from replicate_mock.store import PredictionStore
from replicate_mock.webhook_sender import WebhookSender
from replicate_mock.webhooks import Webhooks


def version_id(model: str) -> str:
    """A stable 64-hex version id per model name."""
    return hashlib.sha256(model.encode()).hexdigest()


class MockState:
    def __init__(self, settings: MockSettings) -> None:
        self.settings = settings
        self.tokens = settings.api_tokens
        self.versions = {version_id(m): m for m in settings.models}
        self.latency_seconds = settings.replicate_mock_latency_seconds
        self.store = PredictionStore(settings.replicate_mock_max_predictions)
        self.images = ImageCache(settings.replicate_mock_image_cache_size)
        self.stats = Stats()
        self.faults = self.fresh_faults()
        secret = settings.replicate_mock_webhook_secret
        self.webhook_secret = secret.get_secret_value() if secret else generate_secret()
        self.webhooks = Webhooks(
            WebhookSender(
                self.webhook_secret,
                timeout_seconds=settings.replicate_mock_webhook_timeout_seconds,
                concurrency=settings.replicate_mock_webhook_concurrency,
                retry_delays=settings.webhook_retry_delays,
            )
        )

    def fresh_faults(self) -> Faults:
        s = self.settings
        return Faults(
            {
                "429": s.replicate_mock_fault_429_rate,
                "500": s.replicate_mock_fault_500_rate,
                "500_after_create": s.replicate_mock_fault_500_after_create_rate,
                "slow": s.replicate_mock_fault_slow_rate,
                "fail": s.replicate_mock_fault_fail_rate,
            },
            retry_after_seconds=s.replicate_mock_retry_after_seconds,
            slow_seconds=s.replicate_mock_slow_seconds,
            seed=s.replicate_mock_fault_seed,
        )

    def reset(self) -> None:
        self.store.clear()
        self.stats = Stats()
        self.webhooks.reset()
        self.faults = self.fresh_faults()
        self.latency_seconds = self.settings.replicate_mock_latency_seconds

    def token_ok(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and any(
            secrets.compare_digest(token.strip(), t) for t in self.tokens
        )

    def api_base(self, request: Request) -> str:
        return str(request.base_url).rstrip("/")

    def files_base(self, request: Request) -> str:
        return (self.settings.replicate_mock_public_url or self.api_base(request)).rstrip("/")


def get_state(request: Request) -> MockState:
    state: MockState = request.app.state.mock
    return state


def require_token(request: Request) -> MockState:
    """FastAPI dependency: the state, once the bearer token checks out (401 otherwise)."""
    state = get_state(request)
    if not state.token_ok(request):
        raise unauthenticated()
    return state
