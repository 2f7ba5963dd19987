"""Table models. Importing this package registers every table on SQLModel.metadata."""

from core.models.base import metadata
from core.models.job import TERMINAL_STATUSES, Job, JobEvent, JobMedia, JobStatus
from core.models.pet import Pet
from core.models.user import LoginFailure, User

__all__ = [
    "TERMINAL_STATUSES",
    "Job",
    "JobEvent",
    "JobMedia",
    "JobStatus",
    "LoginFailure",
    "Pet",
    "User",
    "metadata",
]
