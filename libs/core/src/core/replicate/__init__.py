"""Replicate's prediction API: async client, prediction model and error taxonomy."""

from core.replicate.client import ReplicateClient, parse_retry_after
from core.replicate.errors import (
    CreateOutcomeUnknown,
    DownloadTooLarge,
    PermanentError,
    PredictionFailed,
    ReplicateError,
    TransientError,
)
from core.replicate.schemas import (
    TERMINAL_STATUSES,
    Prediction,
    PredictionPage,
    PredictionStatus,
    PredictionUrls,
)
from core.replicate.settings import ReplicateSettings

__all__ = [
    "TERMINAL_STATUSES",
    "CreateOutcomeUnknown",
    "DownloadTooLarge",
    "PermanentError",
    "Prediction",
    "PredictionFailed",
    "PredictionPage",
    "PredictionStatus",
    "PredictionUrls",
    "ReplicateClient",
    "ReplicateError",
    "ReplicateSettings",
    "TransientError",
    "parse_retry_after",
]
