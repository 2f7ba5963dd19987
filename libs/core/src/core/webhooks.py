"""Standard Webhooks (https://www.standardwebhooks.com) signing and verification, as Replicate
signs its deliveries: the mock signs its own webhooks here, the gateway verifies Replicate's.

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
import re
import secrets
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator, SecretStr

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
_ID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Deliveries older or newer than this are refused: a captured delivery cannot be replayed
# later (the Standard Webhooks libraries' and Svix's default).
TOLERANCE_SECONDS = 5 * 60
# Where Replicate delivers a job's prediction events: the gateway's route, with the job in
# the query, so a prediction whose create answer was lost still finds its job.
REPLICATE_WEBHOOK_PATH = "/webhooks/replicate"
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_MAX_ID_CHARS = 256


class MalformedSecret(ValueError):
    """A webhook secret that is not `whsec_` followed by a non-empty base64 key."""


class InvalidWebhook(Exception):
    """A delivery that must not be trusted: unsigned, malformed, stale or forged."""


class SignatureMismatch(InvalidWebhook):
    """Well formed and fresh, but no signature was made with this secret: forged, or signed
    with a secret rotated since this one was read."""


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


def _decodes(value: SecretStr) -> SecretStr:
    try:
        decode_secret(value.get_secret_value())
    except MalformedSecret as exc:
        raise ValueError(f"not a webhook secret: {exc}") from None
    return value


# A setting holding a `whsec_` secret: refused at start-up unless it decodes.
WebhookSecretSetting = Annotated[SecretStr, AfterValidator(_decodes)]


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


@dataclass(frozen=True, slots=True)
class SignedHeaders:
    """The signature headers of one delivery, checked for form and age (no secret needed)."""

    msg_id: str
    timestamp: int
    signatures: tuple[str, ...]  # every `v1,...` entry, as sent

    @classmethod
    def parse(
        cls,
        headers: Mapping[str, str],
        *,
        tolerance_seconds: float = TOLERANCE_SECONDS,
        now: float | None = None,
    ) -> SignedHeaders:
        """Raises InvalidWebhook when a header is missing or malformed, or the timestamp is
        more than `tolerance_seconds` away from `now` (either way)."""
        lowered = {name.lower(): value for name, value in headers.items()}
        msg_id = lowered.get(ID_HEADER, "")
        timestamp = lowered.get(TIMESTAMP_HEADER, "")
        signature = lowered.get(SIGNATURE_HEADER, "")
        missing = [
            name
            for name, value in (
                (ID_HEADER, msg_id),
                (TIMESTAMP_HEADER, timestamp),
                (SIGNATURE_HEADER, signature),
            )
            if not value
        ]
        if missing:
            raise InvalidWebhook(f"missing {', '.join(missing)}")
        # The id is signed as text: anything but printable ASCII cannot be what a sender
        # signed (and must not reach the encoder).
        if len(msg_id) > _MAX_ID_CHARS or not (msg_id.isascii() and msg_id.isprintable()):
            raise InvalidWebhook(f"malformed {ID_HEADER}")
        if _TIMESTAMP.fullmatch(timestamp) is None:
            raise InvalidWebhook(f"malformed {TIMESTAMP_HEADER}")
        sent_at = int(timestamp)
        skew = (time.time() if now is None else now) - sent_at
        if abs(skew) > tolerance_seconds:
            raise InvalidWebhook(
                f"{TIMESTAMP_HEADER} is {abs(skew):.0f}s in the {'past' if skew > 0 else 'future'}"
            )
        signatures = tuple(entry for entry in signature.split() if entry.startswith("v1,"))
        if not signatures:
            raise InvalidWebhook(f"no v1 signature in {SIGNATURE_HEADER}")
        return cls(msg_id, sent_at, signatures)

    def verify(self, secret: str, body: bytes) -> None:
        """Raises SignatureMismatch unless one entry is the HMAC of `body` with `secret`
        (MalformedSecret for a malformed secret). Every entry is compared in constant time."""
        expected = sign(secret, self.msg_id, self.timestamp, body).encode()
        matched = False
        for entry in self.signatures:
            # Bytes: compare_digest refuses non-ASCII str, and a header may carry any text.
            matched |= hmac.compare_digest(expected, entry.encode("utf-8", "backslashreplace"))
        if not matched:
            raise SignatureMismatch("no signature matches")


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_seconds: float = TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """Verify one delivery as a Standard Webhooks receiver does; returns only if it is
    authentic and fresh. Raises InvalidWebhook (SignatureMismatch when only the signature is
    wrong), or MalformedSecret for a malformed secret. `body` is the raw request body."""
    SignedHeaders.parse(headers, tolerance_seconds=tolerance_seconds, now=now).verify(secret, body)


def replicate_webhook_url(base_url: str, job_id: uuid.UUID) -> str:
    """The `webhook` a job's prediction is created with: the gateway's public base URL, the
    route, and the job."""
    return f"{base_url.rstrip('/')}{REPLICATE_WEBHOOK_PATH}?job_id={job_id}"
