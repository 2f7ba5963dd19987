"""Table models. Importing this package registers every table on SQLModel.metadata."""

from core.models.base import metadata
from core.models.job import Job, JobEvent, JobMedia
from core.models.pet import Pet
from core.models.user import LoginFailure, User

__all__ = [
    "Job",
    "JobEvent",
    "JobMedia",
    "LoginFailure",
    "Pet",
    "User",
    "metadata",
]
