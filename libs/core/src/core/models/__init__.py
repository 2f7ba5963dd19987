"""Table models. Importing this package registers every table on SQLModel.metadata."""

from core.models.base import metadata
from core.models.job import Job, JobEvent, JobMedia
from core.models.pet import Pet
from core.models.rate_limit import RateWindow
from core.models.user import LoginFailure, User
from core.models.webhook import WebhookAttempt, WebhookDelivery, WebhookSecret

__all__ = [
    "Job",
    "JobEvent",
    "JobMedia",
    "LoginFailure",
    "Pet",
    "RateWindow",
    "User",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookSecret",
    "metadata",
]
