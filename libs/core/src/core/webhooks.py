"""Standard Webhooks (https://www.standardwebhooks.com) signing and verification.

Replicate signs its deliveries this way, and so do we. A secret is `whsec_<base64 key>`. The
`webhook-signature` header holds space-separated `v1,<base64 HMAC-SHA256(key,
"{webhook-id}.{webhook-timestamp}.{body}")>` entries: one per secret while a secret is being
rotated, so a receiver holding either the old or the new secret accepts the delivery.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Literal

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
DEFAULT_TOLERANCE_SECONDS = 300  # Standard Webhooks' and Svix's recommendation
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
_ID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

Reason = Literal[
    "missing_header",
    "invalid_timestamp",
    "stale_timestamp",
    "future_timestamp",
    "invalid_signature",
    "malformed_secret",
]
Secrets = str | Sequence[str]


class WebhookVerificationError(Exception):
    """A delivery (or, with reason "malformed_secret", our own configuration) is not valid.

    `reason` lets a receiver tell its own broken secret (a 500) from a bad request (a 4xx).
    """

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason: Reason = reason


def generate_secret() -> str:
    """A new random secret, `whsec_` and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def new_message_id() -> str:
    """A fresh `webhook-id`, shaped like Replicate's (`msg_` and 27 base62 characters)."""
    return "msg_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(27))


def decode_secret(secret: str) -> bytes:
    """The key bytes of `whsec_<base64>`; raises WebhookVerificationError("malformed_secret")."""
    if not secret.startswith(SECRET_PREFIX):
        raise WebhookVerificationError(
            "malformed_secret", f"secret must start with {SECRET_PREFIX}"
        )
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        # Padding is optional in the wild (the reference libraries add it back too).
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WebhookVerificationError("malformed_secret", "secret is not valid base64") from exc
    if not key:
        raise WebhookVerificationError("malformed_secret", "secret is empty")
    return key


def _keys(secret_or_secrets: Secrets) -> list[bytes]:
    listed = [secret_or_secrets] if isinstance(secret_or_secrets, str) else secret_or_secrets
    if not listed:
        raise WebhookVerificationError("malformed_secret", "no secret given")
    return [decode_secret(s) for s in listed]


def _signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    # Bytes, not a formatted str: the HMAC covers the body exactly as it goes on the wire.
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def sign(secret_or_secrets: Secrets, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: one `v1,<base64>` entry per secret, space-separated."""
    return " ".join(
        f"v1,{_signature(key, msg_id, timestamp, body)}" for key in _keys(secret_or_secrets)
    )


def sign_headers(
    secret_or_secrets: Secrets,
    body: bytes,
    *,
    msg_id: str | None = None,
    timestamp: int | None = None,
) -> dict[str, str]:
    """`webhook-id`, `webhook-timestamp` and `webhook-signature` for one delivery attempt.

    Retries of one event pass the same `msg_id` (receivers deduplicate on it) and sign anew
    with the current time, so a late retry is not refused as stale.
    """
    msg_id = msg_id or new_message_id()
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        ID_HEADER: msg_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret_or_secrets, msg_id, timestamp, body),
    }


def verify(
    secret_or_secrets: Secrets,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> str:
    """Check a delivery; returns its `webhook-id` (the key to handle it idempotently).

    Raises WebhookVerificationError when a header is missing, the timestamp is more than
    `tolerance_seconds` from `now` (either way: replays and clock games), no `v1` entry
    matches any of the secrets, or a secret is malformed.
    """
    keys = _keys(secret_or_secrets)  # a broken secret is reported even for a bad request
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id = lowered.get(ID_HEADER, "")
    raw_timestamp = lowered.get(TIMESTAMP_HEADER, "")
    signature = lowered.get(SIGNATURE_HEADER, "")
    missing = [
        name
        for name, value in (
            (ID_HEADER, msg_id),
            (TIMESTAMP_HEADER, raw_timestamp),
            (SIGNATURE_HEADER, signature),
        )
        if not value
    ]
    if missing:
        raise WebhookVerificationError("missing_header", f"missing {', '.join(missing)}")
    # A length bound first: int() of thousands of digits is slow, then refused.
    if not (raw_timestamp.isascii() and raw_timestamp.isdigit() and len(raw_timestamp) <= 12):
        raise WebhookVerificationError("invalid_timestamp", "webhook-timestamp is not Unix seconds")
    timestamp = int(raw_timestamp)
    current = time.time() if now is None else now
    if timestamp < current - tolerance_seconds:
        raise WebhookVerificationError("stale_timestamp", "webhook-timestamp is too old")
    if timestamp > current + tolerance_seconds:
        raise WebhookVerificationError("future_timestamp", "webhook-timestamp is in the future")

    expected = [_signature(key, msg_id, timestamp, body).encode() for key in keys]
    for entry in signature.split():
        version, _, given = entry.partition(",")
        if version != "v1":  # other schemes (v1a: asymmetric) are not ours to check
            continue
        if any(hmac.compare_digest(given.encode(), e) for e in expected):
            return msg_id
    raise WebhookVerificationError("invalid_signature", "no signature matches")
