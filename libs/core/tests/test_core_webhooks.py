"""Standard Webhooks signing and verification: Replicate's test vector, secrets, agreement
with two independent implementations (the standardwebhooks package, Replicate's own client),
and every way a delivery is refused."""

from __future__ import annotations

import base64
import time
import uuid
from datetime import UTC, datetime

import pytest
import standardwebhooks
from replicate.webhook import Webhooks, WebhookSigningSecret

from core.webhooks import (
    InvalidWebhook,
    MalformedSecret,
    SignatureMismatch,
    SignedHeaders,
    decode_secret,
    generate_secret,
    new_message_id,
    replicate_webhook_url,
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


def test_replicate_test_vector() -> None:
    assert sign(SECRET, MSG_ID, TIMESTAMP, BODY) == SIGNATURE


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


def test_sign_headers_signs_with_the_current_time() -> None:
    secret = generate_secret()
    headers = sign_headers(secret, BODY, msg_id=MSG_ID)
    assert headers["webhook-id"] == MSG_ID
    timestamp = int(headers["webhook-timestamp"])
    assert abs(timestamp - time.time()) < 5
    assert headers["webhook-signature"] == sign(secret, MSG_ID, timestamp, BODY)


@pytest.mark.parametrize(
    "secret",
    ["", "whsec_", "whsec_!!!notbase64", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_a"],
    ids=["empty", "prefix-only", "not-base64", "no-prefix", "truncated"],
)
def test_malformed_secrets_are_refused(secret: str) -> None:
    with pytest.raises(MalformedSecret):
        sign(secret, MSG_ID, TIMESTAMP, BODY)


def test_unpadded_secrets_are_accepted() -> None:
    padded = generate_secret()  # 32 bytes: base64 ends in one "="
    assert padded.endswith("=")
    assert decode_secret(padded.rstrip("=")) == decode_secret(padded)


def test_agrees_with_the_standardwebhooks_package() -> None:
    secret = generate_secret()
    body = '{"id":"abc","status":"succeeded","output":["https://x/ü.webp"]}'.encode()
    ours = sign_headers(secret, body, msg_id=new_message_id())
    assert standardwebhooks.Webhook(secret).verify(body, ours, json_parse=False) is None

    theirs = standardwebhooks.Webhook(secret).sign(
        MSG_ID, datetime.fromtimestamp(TIMESTAMP, UTC), body.decode()
    )
    assert theirs == sign(secret, MSG_ID, TIMESTAMP, body)


def test_agrees_with_replicates_own_client() -> None:
    secret = generate_secret()
    headers = sign_headers(secret, BODY, msg_id=new_message_id())
    Webhooks.validate(headers=headers, body=BODY.decode(), secret=WebhookSigningSecret(key=secret))


# -- verification ---------------------------------------------------------------------------

VECTOR_HEADERS = {
    "webhook-id": MSG_ID,
    "webhook-timestamp": str(TIMESTAMP),
    "webhook-signature": SIGNATURE,
}


def test_replicate_test_vector_verifies_at_its_own_time() -> None:
    verify(SECRET, VECTOR_HEADERS, BODY, now=TIMESTAMP + 10)


def test_the_test_vector_is_stale_today() -> None:
    with pytest.raises(InvalidWebhook, match="in the past"):
        verify(SECRET, VECTOR_HEADERS, BODY)


def test_a_tolerance_wide_enough_accepts_an_old_delivery() -> None:
    verify(SECRET, VECTOR_HEADERS, BODY, tolerance_seconds=time.time() - TIMESTAMP + 60)


def test_header_names_are_case_insensitive() -> None:
    verify(SECRET, {k.upper(): v for k, v in VECTOR_HEADERS.items()}, BODY, now=TIMESTAMP)


@pytest.mark.parametrize(
    "signature",
    [
        f"v1,bm90IHRoaXMgb25l {SIGNATURE}",
        f"{SIGNATURE} v1,bm90IHRoaXMgb25l",
        f"v1a,c29tZXRoaW5nIGVsc2U=  {SIGNATURE}",
        f"v2,{SIGNATURE[3:]} {SIGNATURE}",
    ],
    ids=["second-of-two", "first-of-two", "other-scheme-first", "other-version-first"],
)
def test_one_matching_entry_among_several_is_enough(signature: str) -> None:
    headers = {**VECTOR_HEADERS, "webhook-signature": signature}
    verify(SECRET, headers, BODY, now=TIMESTAMP)


def test_rotation_either_secret_of_a_two_entry_header_verifies() -> None:
    old, new = generate_secret(), generate_secret()
    now = int(time.time())
    both = f"{sign(old, MSG_ID, now, BODY)} {sign(new, MSG_ID, now, BODY)}"
    headers = {"webhook-id": MSG_ID, "webhook-timestamp": str(now), "webhook-signature": both}
    verify(old, headers, BODY)
    verify(new, headers, BODY)
    with pytest.raises(SignatureMismatch):
        verify(generate_secret(), headers, BODY)


def test_a_fresh_delivery_from_our_signer_verifies() -> None:
    secret = generate_secret()
    verify(secret, sign_headers(secret, BODY, msg_id=new_message_id()), BODY)


@pytest.mark.parametrize(
    ("change", "body"),
    [
        ({}, b'{"test": 2432232315}'),  # body altered
        ({"webhook-id": "msg_another"}, BODY),  # id altered
        ({"webhook-timestamp": str(TIMESTAMP + 1)}, BODY),  # timestamp altered
        ({"webhook-signature": "v1," + base64.b64encode(b"x" * 32).decode()}, BODY),
        ({"webhook-signature": SIGNATURE.replace("v1,", "v1a,")}, BODY),  # wrong scheme only
    ],
    ids=["body", "id", "timestamp", "forged-signature", "no-v1-entry"],
)
def test_any_change_is_refused(change: dict[str, str], body: bytes) -> None:
    with pytest.raises(InvalidWebhook):
        verify(SECRET, {**VECTOR_HEADERS, **change}, body, now=TIMESTAMP)


def test_a_forged_signature_is_a_signature_mismatch() -> None:
    headers = {**VECTOR_HEADERS, "webhook-signature": "v1," + base64.b64encode(b"x" * 32).decode()}
    with pytest.raises(SignatureMismatch):
        verify(SECRET, headers, BODY, now=TIMESTAMP)


def test_another_secret_is_a_signature_mismatch() -> None:
    with pytest.raises(SignatureMismatch):
        verify(generate_secret(), VECTOR_HEADERS, BODY, now=TIMESTAMP)


@pytest.mark.parametrize("skew", [-301, 301, -10_000, 10_000])
def test_timestamps_more_than_five_minutes_away_are_refused(skew: int) -> None:
    with pytest.raises(InvalidWebhook) as refused:
        verify(SECRET, VECTOR_HEADERS, BODY, now=TIMESTAMP - skew)
    assert not isinstance(refused.value, SignatureMismatch)  # refused before any HMAC


@pytest.mark.parametrize("skew", [-299, 0, 299])
def test_timestamps_within_five_minutes_are_accepted(skew: int) -> None:
    verify(SECRET, VECTOR_HEADERS, BODY, now=TIMESTAMP - skew)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"webhook-timestamp": str(TIMESTAMP), "webhook-signature": SIGNATURE},
        {"webhook-id": MSG_ID, "webhook-signature": SIGNATURE},
        {"webhook-id": MSG_ID, "webhook-timestamp": str(TIMESTAMP)},
        {**VECTOR_HEADERS, "webhook-id": ""},
        {**VECTOR_HEADERS, "webhook-timestamp": "1614265330.5"},
        {**VECTOR_HEADERS, "webhook-timestamp": "-1614265330"},
        {
            **VECTOR_HEADERS,
            "webhook-timestamp": "".join(chr(0xFF10 + int(d)) for d in str(TIMESTAMP)),
        },
        {**VECTOR_HEADERS, "webhook-timestamp": "9" * 40},
        {**VECTOR_HEADERS, "webhook-id": "msg_\u00e9t\u00e9"},
        {**VECTOR_HEADERS, "webhook-id": "msg_\ud800"},
        {**VECTOR_HEADERS, "webhook-signature": "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="},
        {**VECTOR_HEADERS, "webhook-signature": "   "},
        {**VECTOR_HEADERS, "webhook-signature": "v1,\u00e9\ud800"},
    ],
    ids=[
        "none",
        "no-id",
        "no-timestamp",
        "no-signature",
        "empty-id",
        "fractional-timestamp",
        "negative-timestamp",
        "unicode-digits",
        "huge-timestamp",
        "non-ascii-id",
        "surrogate-id",
        "signature-without-version",
        "blank-signature",
        "non-ascii-signature",
    ],
)
def test_malformed_deliveries_are_refused_without_an_error(headers: dict[str, str]) -> None:
    with pytest.raises(InvalidWebhook):
        verify(SECRET, headers, BODY, now=TIMESTAMP)


def test_signed_headers_parse_without_a_secret() -> None:
    parsed = SignedHeaders.parse(VECTOR_HEADERS, now=TIMESTAMP)
    assert parsed == SignedHeaders(MSG_ID, TIMESTAMP, (SIGNATURE,))
    parsed.verify(SECRET, BODY)


def test_verify_agrees_with_the_standardwebhooks_signer() -> None:
    secret = generate_secret()
    now = datetime.now(UTC)
    signature = standardwebhooks.Webhook(secret).sign(MSG_ID, now, BODY.decode())
    headers = {
        "webhook-id": MSG_ID,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }
    verify(secret, headers, BODY)


def test_the_webhook_url_names_the_job() -> None:
    job_id = uuid.uuid4()
    assert (
        replicate_webhook_url("https://api.example.com/", job_id)
        == f"https://api.example.com/webhooks/replicate?job_id={job_id}"
    )
    assert replicate_webhook_url("http://127.0.0.1:8000", job_id).startswith(
        "http://127.0.0.1:8000/webhooks/replicate?"
    )


def test_several_secrets_sign_side_by_side_and_either_verifies() -> None:
    new, old, stranger = generate_secret(), generate_secret(), generate_secret()
    headers = sign_headers([new, old], BODY, msg_id=MSG_ID)
    timestamp = int(headers["webhook-timestamp"])
    assert headers["webhook-signature"] == " ".join(
        sign(key, MSG_ID, timestamp, BODY) for key in (new, old)
    )
    for key in (new, old):
        standardwebhooks.Webhook(key).verify(BODY, headers, json_parse=False)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(stranger).verify(BODY, headers, json_parse=False)
    with pytest.raises(MalformedSecret):
        sign_headers([], BODY, msg_id=MSG_ID)
