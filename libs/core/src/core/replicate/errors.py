"""What can go wrong talking to Replicate, sorted by what the caller should do about it.

- `TransientError`: try again later (connection refused, timeouts, 429, 5xx). `retry_after`
  carries the server's hint in seconds when it gave one.
- `CreateOutcomeUnknown` (a `TransientError`): a create call failed *after* the request may
  have reached the server (read timeout, connection dropped mid-response, 5xx). A prediction
  may exist and be billed, so before posting again look for it, e.g. with
  `ReplicateClient.list_predictions(created_after=...)`. A create that fails before anything
  was sent (connect error or timeout, pool timeout), or with 429 or another 4xx, raises the
  plain class: no prediction was made and a retry cannot double-create.
- `PermanentError`: retrying will not help (401, 403, 404, 422 and other 4xx).
- `PredictionFailed` (a `PermanentError`): the prediction ran and ended failed, canceled or
  aborted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.replicate.schemas import Prediction


class ReplicateError(Exception):
    """Base class of every error this client raises."""


class TransientError(ReplicateError):
    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CreateOutcomeUnknown(TransientError):
    """The create request may have made a prediction; check before creating another."""


class PermanentError(ReplicateError):
    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        invalid_fields: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(f"Replicate answered {status}: {detail}")
        self.status = status
        self.detail = detail
        self.title = title
        self.invalid_fields = invalid_fields or []


class DownloadTooLarge(PermanentError):
    """An output file is bigger than the caller allows."""

    def __init__(self, url: str, max_bytes: int) -> None:
        super().__init__(413, f"{url} is larger than {max_bytes} bytes")
        self.url = url
        self.max_bytes = max_bytes


class PredictionFailed(PermanentError):
    def __init__(self, prediction: Prediction) -> None:
        detail = prediction.error or f"prediction {prediction.id} ended {prediction.status}"
        super().__init__(200, detail)
        self.prediction = prediction
