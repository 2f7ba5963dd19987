"""Replicate's prediction endpoints (/v1/...) and the output files."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from replicate_mock.faults import Endpoint, FaultKind
from replicate_mock.inputs import CONTENT_TYPES, validate_flux_input
from replicate_mock.problems import Problem, not_found, validation_failed
from replicate_mock.state import MockState, get_state, require_token, version_id
from replicate_mock.store import TERMINAL, PredictionRecord, decode_cursor, new_prediction_id
from replicate_mock.webhook_fields import parse_webhook_fields

router = APIRouter()
Authed = Annotated[MockState, Depends(require_token)]

BODY_KEYS = frozenset({"input", "webhook", "webhook_events_filter", "webhook_completed", "stream"})
HEX64 = re.compile(r"^[0-9a-f]{64}$")
PREFER_WAIT = re.compile(r"(?:^|[,;\s])wait(?:=(\d+))?(?:$|[,;\s])")
FILE_NAME = re.compile(r"^out-(\d+)\.(webp|jpg|png)$")
FAILED_MESSAGE = "Prediction failed: injected fault (replicate_mock)"


def now() -> datetime:
    return datetime.now(UTC)


async def enter(state: MockState, endpoint: Endpoint) -> FaultKind | None:
    """Count the call and serve an injected fault, if one is drawn for it."""
    state.stats.calls[endpoint] += 1
    fault = state.faults.draw(endpoint)
    if fault is None:
        return None
    state.stats.faults[fault] += 1
    if fault == "429":
        wait = state.faults.retry_after_seconds
        raise Problem(
            429,
            f"Request was throttled. Your rate limit resets in ~{wait}s.",
            headers={"Retry-After": str(wait)},
        )
    if fault == "500":
        raise Problem(500, "Internal server error", title="Internal Server Error")
    if fault == "slow" and endpoint != "create":
        await anyio.sleep(state.faults.slow_seconds)
    return fault


def prediction_response(
    state: MockState, request: Request, record: PredictionRecord, **kwargs: Any
) -> dict[str, Any]:
    return record.to_json(
        now(), api_base=state.api_base(request), files_base=state.files_base(request), **kwargs
    )


async def read_body(request: Request, allowed: frozenset[str]) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"null")
    except ValueError as exc:
        raise Problem(400, f"Invalid JSON body: {exc}", title="Bad request") from exc
    if not isinstance(body, dict):
        raise validation_failed(
            [{"type": "invalid_type", "field": "(root)", "description": "Expected an object"}]
        )
    problems = [
        {
            "type": "additional_property_not_allowed",
            "field": "(root)",
            "description": f"Additional property {key} is not allowed",
        }
        for key in body
        if key not in allowed
    ]
    for key in sorted(allowed & {"version", "input"}):
        if key not in body:
            problems.append(
                {"type": "required", "field": "(root)", "description": f"{key} is required"}
            )
    if problems:
        raise validation_failed(problems)
    return body


def parse_prefer_wait(request: Request) -> tuple[int, str] | None:
    """`Prefer: wait` (60 s) or `wait=N` (1..60); returns (seconds, the echo)."""
    match = PREFER_WAIT.search(request.headers.get("prefer", ""))
    if match is None:
        return None
    if match.group(1) is None:
        return 60, "wait"
    seconds = int(match.group(1))
    if not 1 <= seconds <= 60:
        return None
    return seconds, f"wait={seconds}"


async def create(state: MockState, request: Request, *, model: str | None) -> Response:
    """Create for an official `model`, or (model None) for the body's `version`."""
    fault = await enter(state, "create")
    if model is not None:
        if model not in state.settings.models:
            raise not_found()
        body = await read_body(request, BODY_KEYS)
        version = "hidden"
    else:
        body = await read_body(request, BODY_KEYS | {"version"})
        if not isinstance(body["version"], str):
            raise validation_failed(
                [{"type": "invalid_type", "field": "version", "description": "Expected a string"}]
            )
        model, version = resolve_version(state, body["version"])
    webhook, problems = parse_webhook_fields(body)
    params, input_problems = validate_flux_input(body["input"])
    if params is None or problems:
        raise validation_failed(problems + input_problems)
    prediction_id = new_prediction_id()
    seed = params.seed
    if seed is None:  # random in the real thing; derived from the id here
        seed = int.from_bytes(hashlib.sha256(prediction_id.encode()).digest()[:4]) % 100_000
    created = now()
    latency = timedelta(seconds=state.latency_seconds)
    record = PredictionRecord(
        id=prediction_id,
        seq=state.store.next_seq(),
        model=model,
        version=version,
        input=body["input"],
        params=params,
        seed=seed,
        created_at=created,
        started_at=created + latency / 4,
        completed_at=created + latency,
        error=FAILED_MESSAGE if fault == "fail" else None,
        webhook=webhook,
    )
    state.store.add(record)
    # Bases taken now: the webhooks' bodies must match what GET on this origin answers.
    api_base, files_base = state.api_base(request), state.files_base(request)
    state.webhooks.follow(
        record, lambda: record.to_json(now(), api_base=api_base, files_base=files_base)
    )
    state.stats.predictions_created += 1
    if fault == "500_after_create":
        raise Problem(500, "Internal server error", title="Internal Server Error")
    if fault == "slow":  # the prediction exists; a client that gives up leaves it behind
        await anyio.sleep(state.faults.slow_seconds)

    headers: dict[str, str] = {}
    forced: dict[str, Any] = {}
    if (wait := parse_prefer_wait(request)) is not None:
        seconds, echo = wait
        headers["Preference-Applied"] = echo
        deadline = created + timedelta(seconds=seconds)
        while record.status_at(now()) not in TERMINAL and now() < deadline:
            until = min(deadline, record.completed_at)
            await anyio.sleep(min(0.25, max(0.0, (until - now()).total_seconds())) + 0.001)
        if record.status_at(now()) not in TERMINAL:
            forced["status"] = "starting"  # what the real API reports when a wait expires
            headers["Location"] = f"{state.api_base(request)}/v1/predictions/{record.id}"
    content = prediction_response(state, request, record, **forced)
    return JSONResponse(content, status_code=201, headers=headers)


@router.post("/v1/models/{owner}/{name}/predictions", status_code=201)
async def create_for_model(owner: str, name: str, request: Request, state: Authed) -> Response:
    return await create(state, request, model=f"{owner}/{name}")


@router.post("/v1/predictions", status_code=201)
async def create_for_version(request: Request, state: Authed) -> Response:
    return await create(state, request, model=None)


def resolve_version(state: MockState, ref: str) -> tuple[str, str]:
    """(model, version) for a 64-hex id, "owner/name:id" or an official "owner/name"."""
    if HEX64.match(ref) and ref in state.versions:
        return state.versions[ref], ref
    model, sep, vid = ref.partition(":")
    if sep and model in state.settings.models and vid == version_id(model):
        return model, vid
    if not sep and ref in state.settings.models:
        return ref, "hidden"
    raise Problem(
        422,
        "The specified version does not exist (or perhaps you don't have permission to use it?)",
        title="Invalid version or not permitted",
    )


@router.get("/v1/predictions/{prediction_id}")
async def get_prediction(prediction_id: str, request: Request, state: Authed) -> dict[str, Any]:
    await enter(state, "get")
    record = state.store.get(prediction_id)
    if record is None:
        raise not_found()
    return prediction_response(state, request, record)


@router.post("/v1/predictions/{prediction_id}/cancel")
async def cancel_prediction(prediction_id: str, request: Request, state: Authed) -> dict[str, Any]:
    await enter(state, "cancel")
    record = state.store.get(prediction_id)
    if record is None:
        raise not_found()
    record.cancel(now())  # a finished prediction comes back unchanged
    state.webhooks.changed(record.id)  # `completed` goes out now, not at the planned end
    return prediction_response(state, request, record)


def parse_time(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise Problem(400, f"{name} must be an ISO 8601 date-time", title="Bad request") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@router.get("/v1/predictions")
async def list_predictions(
    request: Request,
    state: Authed,
    created_after: str | None = None,
    created_before: str | None = None,
    cursor: str | None = None,
) -> dict[str, Any]:
    await enter(state, "list")
    position = None
    if cursor is not None and (position := decode_cursor(cursor)) is None:
        raise Problem(400, "Invalid cursor", title="Bad request")
    page = state.store.page(
        size=state.settings.replicate_mock_page_size,
        cursor=position,
        created_after=parse_time("created_after", created_after),
        created_before=parse_time("created_before", created_before),
    )

    def link(token: str | None) -> str | None:
        return None if token is None else str(request.url.include_query_params(cursor=token))

    return {
        "next": link(page.next_cursor),
        "previous": link(page.previous_cursor),
        "results": [prediction_response(state, request, r) for r in page.items],
    }


@router.get("/v1/webhooks/default/secret")
async def get_webhook_secret(state: Authed) -> dict[str, str]:
    """The account's signing secret, to verify the mock's webhooks (one per mock process)."""
    state.stats.calls["webhook_secret"] += 1
    return {"key": state.webhook_secret}


@router.get("/v1/models/{owner}/{name}/versions/{version}")
async def get_version(owner: str, name: str, version: str, state: Authed) -> dict[str, Any]:
    """Enough of a model version for the official client's run("owner/name:version")."""
    state.stats.calls["version"] += 1
    model = f"{owner}/{name}"
    if model not in state.settings.models or version != version_id(model):
        raise not_found()
    return {
        "id": version,
        "created_at": "2024-08-01T00:00:00.000000Z",
        "cog_version": "0.9.13",
        "openapi_schema": {
            "openapi": "3.0.2",
            "info": {"title": "Cog", "version": "0.1.0"},
            "components": {"schemas": {"Input": {"type": "object", "required": ["prompt"]}}},
        },
    }


@router.get("/files/{prediction_id}/{filename}")
async def get_file(prediction_id: str, filename: str, request: Request) -> Response:
    """Output files; public unless REPLICATE_MOCK_FILES_REQUIRE_AUTH (then bearer needed)."""
    state = get_state(request)
    if state.settings.replicate_mock_files_require_auth:
        require_token(request)
    state.stats.calls["files"] += 1
    record = state.store.get(prediction_id)
    match = FILE_NAME.match(filename)
    if record is None or match is None or record.status_at(now()) != "succeeded":
        raise not_found()
    index, ext = int(match.group(1)), match.group(2)
    if index >= record.params.num_outputs or ext != record.params.output_format:
        raise not_found()
    data = await state.images.get(
        f"{record.id}/{filename}",
        prompt=record.params.prompt,
        seed=record.seed,
        index=index,
        width=record.params.width,
        height=record.params.height,
        output_format=record.params.output_format,
        quality=record.params.output_quality,
    )
    return Response(data, media_type=CONTENT_TYPES[ext])
