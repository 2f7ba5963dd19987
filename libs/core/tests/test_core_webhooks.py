"""Standard Webhooks signing and verification: Replicate's test vector, every refusal, rotation,
and agreement with two independent implementations (standardwebhooks, Replicate's client)."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import pytest
import standardwebhooks
from replicate.webhook import Webhooks, WebhookSigningSecret

from core.webhooks import (
    WebhookVerificationError,
    decode_secret,
    generate_secret,
    new_message_id,
    sign,
    sign_headers,
    verify,
)

# From Replicate's client tests (tests/test_webhooks.py), the same in its docs.
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
BODY = b'{"test": 2432232314}'
SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
HEADERS = {
    "webhook-id": MSG_ID,
    "webhook-timestamp": str(TIMESTAMP),
    "webhook-signature": SIGNATURE,
}


def reason_of(excinfo: pytest.ExceptionInfo[WebhookVerificationError]) -> str:
    return excinfo.value.reason


def test_replicate_test_vector_signs_and_verifies() -> None:
    assert sign(SECRET, MSG_ID, TIMESTAMP, BODY) == SIGNATURE
    assert verify(SECRET, HEADERS, BODY, now=TIMESTAMP) == MSG_ID


def test_generated_secrets_are_32_random_bytes() -> None:
    first, second = generate_secret(), generate_secret()
    assert first.startswith("whsec_")
    assert len(decode_secret(first)) == 32
    assert first != second
    assert base64.b64encode(decode_secret(first)).decode() == first.removeprefix("whsec_")


def test_message_ids_look_like_replicates() -> None:
    ids = {new_message_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(i.startswith("msg_") and len(i) == 31 and i[4:].isalnum() for i in ids)


def test_sign_headers_round_trip_with_current_time() -> None:
    secret = generate_secret()
    headers = sign_headers(secret, BODY)
    assert headers["webhook-id"].startswith("msg_")
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 5
    assert verify(secret, headers, BODY) == headers["webhook-id"]
    fixed = sign_headers(SECRET, BODY, msg_id=MSG_ID, timestamp=TIMESTAMP)
    assert fixed == HEADERS


@pytest.mark.parametrize(
    ("headers", "body", "secret"),
    [
        (HEADERS, b'{"test": 2432232315}', SECRET),  # body changed
        ({**HEADERS, "webhook-id": "msg_other"}, BODY, SECRET),  # id changed
        ({**HEADERS, "webhook-timestamp": str(TIMESTAMP + 1)}, BODY, SECRET),  # replayed ts
        (HEADERS, BODY, generate_secret()),  # someone else's secret
        ({**HEADERS, "webhook-signature": "v1,AAAA"}, BODY, SECRET),
        ({**HEADERS, "webhook-signature": "v1"}, BODY, SECRET),
        ({**HEADERS, "webhook-signature": "v1,not base64 at all é"}, BODY, SECRET),
        ({**HEADERS, "webhook-signature": SIGNATURE.replace("v1,", "v2,")}, BODY, SECRET),
    ],
    ids=["body", "id", "timestamp", "secret", "short", "no-comma", "garbage", "other-version"],
)
def test_forged_deliveries_are_refused(headers: dict[str, str], body: bytes, secret: str) -> None:
    now = int(headers["webhook-timestamp"])
    with pytest.raises(WebhookVerificationError) as excinfo:
        verify(secret, headers, body, now=now)
    assert reason_of(excinfo) == "invalid_signature"


@pytest.mark.parametrize(
    ("offset", "reason"),
    [(-301, "future_timestamp"), (301, "stale_timestamp")],
)
def test_timestamps_outside_the_tolerance_are_refused(offset: int, reason: str) -> None:
    # `offset` is how far `now` is from the signed timestamp.
    with pytest.raises(WebhookVerificationError) as excinfo:
        verify(SECRET, HEADERS, BODY, now=TIMESTAMP + offset)
    assert reason_of(excinfo) == reason
    for edge in (-300, 300):
        assert verify(SECRET, HEADERS, BODY, now=TIMESTAMP + edge) == MSG_ID
    assert verify(SECRET, HEADERS, BODY, now=TIMESTAMP + offset, tolerance_seconds=400)


@pytest.mark.parametrize("value", ["abc", "-5", "1614265330.5", "١٢٣", "9" * 5000])
def test_timestamps_that_are_not_unix_seconds_are_refused(value: str) -> None:
    with pytest.raises(WebhookVerificationError) as excinfo:
        verify(SECRET, {**HEADERS, "webhook-timestamp": value}, BODY, now=TIMESTAMP)
    assert reason_of(excinfo) == "invalid_timestamp"


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_or_empty_headers_are_refused(missing: str) -> None:
    without = {k: v for k, v in HEADERS.items() if k != missing}
    for headers in (without, {**HEADERS, missing: ""}):
        with pytest.raises(WebhookVerificationError) as excinfo:
            verify(SECRET, headers, BODY, now=TIMESTAMP)
        assert reason_of(excinfo) == "missing_header"
        assert missing in str(excinfo.value)


def test_header_names_are_case_insensitive() -> None:
    shouted = {k.upper(): v for k, v in HEADERS.items()}
    assert verify(SECRET, shouted, BODY, now=TIMESTAMP) == MSG_ID


def test_several_signatures_let_either_secret_verify_during_rotation() -> None:
    old, new = SECRET, generate_secret()
    signature = sign([old, new], MSG_ID, TIMESTAMP, BODY)
    entries = signature.split(" ")
    assert entries[0] == SIGNATURE
    assert len(entries) == 2
    headers = {**HEADERS, "webhook-signature": signature}
    for receiver_secret in (old, new, [generate_secret(), new]):
        assert verify(receiver_secret, headers, BODY, now=TIMESTAMP) == MSG_ID
    # A receiver that knows both accepts a delivery signed with only one of them.
    assert verify([new, old], HEADERS, BODY, now=TIMESTAMP) == MSG_ID
    with pytest.raises(WebhookVerificationError):
        verify(generate_secret(), headers, BODY, now=TIMESTAMP)


@pytest.mark.parametrize(
    "secret",
    ["", "whsec_", "whsec_!!!notbase64", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_a"],
    ids=["empty", "prefix-only", "not-base64", "no-prefix", "truncated"],
)
def test_malformed_secrets_are_refused_on_both_sides(secret: str) -> None:
    with pytest.raises(WebhookVerificationError) as signing:
        sign(secret, MSG_ID, TIMESTAMP, BODY)
    assert reason_of(signing) == "malformed_secret"
    with pytest.raises(WebhookVerificationError) as verifying:
        verify(secret, HEADERS, BODY, now=TIMESTAMP)
    assert reason_of(verifying) == "malformed_secret"


def test_an_empty_list_of_secrets_is_refused() -> None:
    with pytest.raises(WebhookVerificationError) as excinfo:
        verify([], HEADERS, BODY, now=TIMESTAMP)
    assert reason_of(excinfo) == "malformed_secret"


def test_unpadded_secrets_are_accepted() -> None:
    padded = generate_secret()  # 32 bytes: base64 ends in one "="
    assert padded.endswith("=")
    assert decode_secret(padded.rstrip("=")) == decode_secret(padded)


def test_agrees_with_the_standardwebhooks_package() -> None:
    secret = generate_secret()
    body = '{"id":"abc","status":"succeeded","output":["https://x/ü.webp"]}'.encode()
    ours = sign_headers(secret, body)
    assert standardwebhooks.Webhook(secret).verify(body, ours, json_parse=False) is None

    theirs = standardwebhooks.Webhook(secret).sign(
        MSG_ID, datetime.fromtimestamp(TIMESTAMP, UTC), body.decode()
    )
    assert theirs == sign(secret, MSG_ID, TIMESTAMP, body)
    headers = {**HEADERS, "webhook-signature": theirs}
    assert verify(secret, headers, body, now=TIMESTAMP) == MSG_ID


def test_agrees_with_replicates_own_client() -> None:
    secret = generate_secret()
    headers = sign_headers([generate_secret(), secret], BODY)
    Webhooks.validate(headers=headers, body=BODY.decode(), secret=WebhookSigningSecret(key=secret))
