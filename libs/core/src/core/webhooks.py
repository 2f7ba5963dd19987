"""Standard Webhooks (https://www.standardwebhooks.com) signing, as Replicate signs its
deliveries; the mock signs its own webhooks with it.

A secret is `whsec_<base64 key>`. The `webhook-signature` header is `v1,<base64
HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{body}")>`, which any Standard Webhooks
receiver (Replicate's client, the standardwebhooks package) verifies. While a secret is being
rotated, a delivery carries one such signature per key, separated by spaces, and a receiver
that knows either key accepts it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Sequence

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
_ID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


class MalformedSecret(ValueError):
    """A webhook secret that is not `whsec_` followed by a non-empty base64 key."""


def generate_secret() -> str:
    """A new random secret, `whsec_` and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def new_message_id() -> str:
    """A fresh `webhook-id`, shaped like Replicate's (`msg_` and 27 base62 characters)."""
    return "msg_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(27))


def decode_secret(secret: str) -> bytes:
    """The key bytes of `whsec_<base64>`; raises MalformedSecret."""
    if not secret.startswith(SECRET_PREFIX):
        raise MalformedSecret(f"secret must start with {SECRET_PREFIX}")
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        # Padding is optional in the wild (the reference libraries add it back too).
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedSecret("secret is not valid base64") from exc
    if not key:
        raise MalformedSecret("secret is empty")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value, `v1,<base64>`."""
    # Bytes, not a formatted str: the HMAC covers the body exactly as it goes on the wire.
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(decode_secret(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def sign_headers(secret: str | Sequence[str], body: bytes, *, msg_id: str) -> dict[str, str]:
    """`webhook-id`, `webhook-timestamp` and `webhook-signature` for one delivery attempt.

    Retries of one event pass the same `msg_id` (receivers deduplicate on it) and sign anew
    with the current time, so a late retry is not refused as stale. Several secrets (a key and
    the one it is replacing) give one `v1,` signature each, space-separated.
    """
    keys = [secret] if isinstance(secret, str) else list(secret)
    if not keys:
        raise MalformedSecret("no secret to sign with")
    timestamp = int(time.time())
    return {
        ID_HEADER: msg_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: " ".join(sign(key, msg_id, timestamp, body) for key in keys),
    }
