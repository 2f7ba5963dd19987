"""Async client for Replicate's prediction API (and the local mock, which speaks the same).

Every call has timeouts and maps failures onto `core.replicate.errors`; see that module for
what each error means to a caller, in particular `CreateOutcomeUnknown` on create.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Collection, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Self

import httpx
from prometheus_client import Histogram
from pydantic import SecretStr, ValidationError

from core.replicate.errors import (
    CreateOutcomeUnknown,
    DownloadTooLarge,
    PermanentError,
    ReplicateError,
    TransientError,
)
from core.replicate.schemas import Prediction, PredictionPage
from core.replicate.settings import ReplicateSettings
from core.tracing import instrument_http_client

# Extra read time on top of `Prefer: wait=N`, so the server answers before we give up.
WAIT_MARGIN_SECONDS = 5.0
# Output hosts that get the API token (the real API wants it on file downloads too).
DEFAULT_TOKEN_HOSTS = ("replicate.delivery",)
_RESETS_IN = re.compile(r"resets in ~?(\d+(?:\.\d+)?)\s*s")


def parse_retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait from Retry-After (seconds or HTTP date), else from a 429 detail text."""
    value = response.headers.get("retry-after", "").strip()
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            when = None
        if when is not None:
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            return max(0.0, (when - datetime.now(UTC)).total_seconds())
    if response.status_code == 429:
        match = _RESETS_IN.search(_problem(response).get("detail") or "")
        if match:
            return float(match.group(1))
    return None


def _problem(response: httpx.Response) -> dict[str, Any]:
    """The RFC 7807 body as a dict; an HTML or empty body becomes {"detail": <text>}."""
    try:
        body = response.json()
    except ValueError:
        return {"detail": response.text[:500] or response.reason_phrase}
    if isinstance(body, dict):
        return body
    return {"detail": str(body)[:500]}


def _status_error(response: httpx.Response, *, create: bool) -> ReplicateError:
    status = response.status_code
    problem = _problem(response)
    detail = str(problem.get("detail") or problem.get("title") or response.reason_phrase)
    if status in (408, 429):  # refused before any work was done
        return TransientError(
            f"Replicate answered {status}: {detail}", retry_after=parse_retry_after(response)
        )
    if status >= 500:
        kind = CreateOutcomeUnknown if create else TransientError
        return kind(
            f"Replicate answered {status}: {detail}", retry_after=parse_retry_after(response)
        )
    fields = problem.get("invalid_fields")
    return PermanentError(
        status,
        detail,
        title=problem.get("title"),
        invalid_fields=fields if isinstance(fields, list) else None,
    )


@contextmanager
def _transport_errors(*, create: bool = False) -> Iterator[None]:
    """Map httpx transport failures: did the request possibly reach the server or not?"""
    try:
        yield
    except (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.InvalidURL) as exc:
        raise PermanentError(0, f"bad request to Replicate: {exc!r}") from exc
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError) as exc:
        # Nothing was sent: no prediction can exist.
        raise TransientError(f"cannot reach Replicate: {exc!r}") from exc
    except httpx.TransportError as exc:
        # Read/write timeouts, dropped connections: the server may have acted on the request.
        kind = CreateOutcomeUnknown if create else TransientError
        raise kind(f"Replicate call interrupted: {exc!r}") from exc


class ReplicateClient:
    """One instance per process; share it across tasks (httpx pools connections)."""

    def __init__(
        self,
        *,
        base_url: str,
        api_token: str | SecretStr,
        connect_timeout: float = 10.0,
        timeout: float = 30.0,
        wait_seconds: int | None = None,
        http: httpx.AsyncClient | None = None,
        token_hosts: Collection[str] = DEFAULT_TOKEN_HOSTS,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        token = api_token.get_secret_value() if isinstance(api_token, SecretStr) else api_token
        self._headers = {"Authorization": f"Bearer {token}", "User-Agent": "platform-core/0.1"}
        self._timeout = httpx.Timeout(timeout, connect=connect_timeout)
        self._wait_seconds = wait_seconds
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(timeout=self._timeout, follow_redirects=False)
        instrument_http_client(self._http)  # a span per API call, only with tracing on
        self._origin = httpx.URL(self.base_url)
        self._token_hosts = tuple(token_hosts)

    @classmethod
    def from_settings(
        cls, settings: ReplicateSettings, *, http: httpx.AsyncClient | None = None
    ) -> Self:
        return cls(
            base_url=settings.replicate_base_url,
            api_token=settings.replicate_api_token,
            connect_timeout=settings.replicate_connect_timeout_seconds,
            timeout=settings.replicate_timeout_seconds,
            wait_seconds=settings.replicate_wait_seconds,
            http=http,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def create_prediction(
        self,
        *,
        model: str | None = None,
        version: str | None = None,
        input: dict[str, Any],
        wait: int | None = None,
        webhook: str | None = None,
        webhook_events_filter: list[str] | None = None,
    ) -> Prediction:
        """Create by official model ("owner/name") or by version; see errors.py for failures.

        `wait` (1..60 s, default from settings) holds the call until the prediction is done
        or the wait expires; either way the returned prediction may still be running.
        """
        if (model is None) == (version is None):
            raise ValueError("pass exactly one of model or version")
        body: dict[str, Any] = {"input": input}
        if webhook is not None:
            body["webhook"] = webhook
            if webhook_events_filter is not None:
                body["webhook_events_filter"] = webhook_events_filter
        if model is not None:
            owner, sep, name = model.partition("/")
            if not (owner and sep and name) or "/" in name:
                raise ValueError(f"model must be 'owner/name', not {model!r}")
            path = f"/v1/models/{owner}/{name}/predictions"
        else:
            path = "/v1/predictions"
            body["version"] = version
        wait = wait if wait is not None else self._wait_seconds
        headers: dict[str, str] = {}
        timeout = self._timeout
        if wait is not None:
            if not 1 <= wait <= 60:
                raise ValueError("wait must be between 1 and 60 seconds")
            headers["Prefer"] = f"wait={wait}"
            read = max(self._timeout.read or 0.0, wait + WAIT_MARGIN_SECONDS)
            timeout = httpx.Timeout(self._timeout.write, connect=self._timeout.connect, read=read)
        response = await self._request(
            "POST", path, json=body, headers=headers, timeout=timeout, create=True
        )
        return self._prediction(response)

    async def get_prediction(self, prediction_id: str) -> Prediction:
        response = await self._request("GET", f"/v1/predictions/{_safe_id(prediction_id)}")
        return self._prediction(response)

    async def cancel_prediction(self, prediction_id: str) -> Prediction:
        """Cancel a running prediction; a finished one comes back unchanged."""
        path = f"/v1/predictions/{_safe_id(prediction_id)}/cancel"
        return self._prediction(await self._request("POST", path))

    async def get_webhook_secret(self) -> str:
        """The account's webhook signing secret, `whsec_<base64>` (one per user or org; it
        changes only when rotated)."""
        response = await self._request("GET", "/v1/webhooks/default/secret")
        try:
            key = response.json()["key"]
        except (ValueError, KeyError, TypeError) as exc:
            raise TransientError(f"unexpected webhook secret body from Replicate: {exc!r}") from exc
        if not isinstance(key, str) or not key:
            raise TransientError("Replicate returned no webhook secret")
        return key

    async def list_predictions(
        self,
        *,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> AsyncIterator[Prediction]:
        """Every prediction of the account, newest first, following the `next` cursors."""
        params: dict[str, str] = {}
        if created_after is not None:
            params["created_after"] = _iso(created_after)
        if created_before is not None:
            params["created_before"] = _iso(created_before)
        url: str | None = self._url("/v1/predictions", params)
        while url is not None:
            response = await self._request("GET", url)
            try:
                page = PredictionPage.model_validate_json(response.content)
            except ValidationError as exc:
                raise TransientError(f"unexpected list body from Replicate: {exc}") from exc
            for prediction in page.results:
                yield prediction
            url = self._rebase(page.next) if page.next else None

    async def download(
        self,
        url: str,
        *,
        max_bytes: int,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> tuple[bytes, str]:
        """Fetch an output file, refusing bodies over `max_bytes`; returns (body, content type).

        The API token is sent only to the API's own origin and to `token_hosts`. Redirects are
        not followed (a 3xx is a PermanentError), so a caller's check of the URL's host is a
        check of where the bytes really come from.
        """
        target = httpx.URL(url)
        if target.scheme not in ("http", "https"):
            raise PermanentError(0, f"refusing to download {target.scheme!r} URL")
        headers = {"User-Agent": self._headers["User-Agent"]}
        if self._sends_token_to(target):
            headers["Authorization"] = self._headers["Authorization"]
        with _measured("download") as outcome, _transport_errors():
            async with self._http.stream(
                "GET",
                target,
                headers=headers,
                timeout=self._timeout if timeout is None else httpx.Timeout(timeout),
                follow_redirects=False,
            ) as response:
                outcome.append(str(response.status_code))
                if not response.is_success:
                    await response.aread()
                    raise _status_error(response, create=False)
                length = response.headers.get("content-length")
                if length is not None and length.isdigit() and int(length) > max_bytes:
                    raise DownloadTooLarge(url, max_bytes)
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > max_bytes:
                        raise DownloadTooLarge(url, max_bytes)
                content_type = response.headers.get("content-type", "application/octet-stream")
        return bytes(body), content_type.split(";")[0].strip()

    # -- plumbing ---------------------------------------------------------------------------

    def _url(self, path: str, params: dict[str, str] | None = None) -> str:
        url = httpx.URL(self.base_url + path)
        return str(url.copy_merge_params(params) if params else url)

    def _rebase(self, url: str) -> str:
        """Keep cursor URLs on the configured origin so the token never goes elsewhere."""
        parsed = httpx.URL(url)
        if parsed.is_relative_url:
            return self.base_url + url
        return str(
            parsed.copy_with(
                scheme=self._origin.scheme, host=self._origin.host, port=self._origin.port
            )
        )

    def _sends_token_to(self, url: httpx.URL) -> bool:
        if (url.scheme, url.host, url.port) == (
            self._origin.scheme,
            self._origin.host,
            self._origin.port,
        ):
            return True
        return any(url.host == h or url.host.endswith("." + h) for h in self._token_hosts)

    async def _request(
        self,
        method: str,
        path_or_url: str,
        *,
        json: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        timeout: httpx.Timeout | None = None,  # noqa: ASYNC109 - httpx's per-call timeouts
        create: bool = False,
    ) -> httpx.Response:
        url = path_or_url if "://" in path_or_url else self.base_url + path_or_url
        with _measured(_endpoint(method, httpx.URL(url).path)) as outcome:
            with _transport_errors(create=create):
                response = await self._http.request(
                    method,
                    url,
                    json=json,
                    headers={**self._headers, **(headers or {})},
                    timeout=timeout or self._timeout,
                )
            outcome.append(str(response.status_code))
        if not response.is_success:
            raise _status_error(response, create=create)
        return response

    @staticmethod
    def _prediction(response: httpx.Response) -> Prediction:
        try:
            return Prediction.model_validate_json(response.content)
        except ValidationError as exc:
            # A 2xx we cannot read (proxy page, truncated body): treat as a server hiccup.
            raise TransientError(f"unexpected prediction body from Replicate: {exc}") from exc


# Calls to Replicate by endpoint (a template: never a prediction id) and HTTP status, or
# "error" when no answer came (connection refused, timeout).
REQUEST_DURATION = Histogram(
    "replicate_request_duration_seconds",
    "Calls to Replicate's API (and output downloads) by endpoint and status, with durations",
    ["endpoint", "status"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
_ENDPOINTS = (
    (re.compile(r"^/v1/models/[^/]+/[^/]+/predictions$"), "create"),
    (re.compile(r"^/v1/deployments/[^/]+/[^/]+/predictions$"), "create"),
    (re.compile(r"^/v1/predictions/[^/]+/cancel$"), "cancel"),
    (re.compile(r"^/v1/predictions/[^/]+$"), "get"),
    (re.compile(r"^/v1/predictions$"), "list"),
    (re.compile(r"^/v1/webhooks/default/secret$"), "webhook_secret"),
)


def _endpoint(method: str, path: str) -> str:
    for pattern, name in _ENDPOINTS:
        if pattern.search(path):
            return "create" if name == "list" and method == "POST" else name
    return "other"


@contextmanager
def _measured(endpoint: str) -> Iterator[list[str]]:
    """Time the block; it appends the HTTP status it got (none: the call failed)."""
    outcome: list[str] = []
    started = time.perf_counter()
    try:
        yield outcome
    finally:
        status = outcome[0] if outcome else "error"
        REQUEST_DURATION.labels(endpoint, status).observe(time.perf_counter() - started)


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _safe_id(prediction_id: str) -> str:
    if not prediction_id or not prediction_id.isalnum():
        raise ValueError(f"not a prediction id: {prediction_id!r}")
    return prediction_id
