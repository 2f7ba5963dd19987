"""Standard Webhooks signing: Replicate's test vector, secrets, and agreement with two
independent receivers (the standardwebhooks package, Replicate's own client)."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import pytest
import standardwebhooks
from replicate.webhook import Webhooks, WebhookSigningSecret

from core.webhooks import (
    MalformedSecret,
    decode_secret,
    generate_secret,
    new_message_id,
    sign,
    sign_headers,
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
