"""Table models. Importing this package registers every table on SQLModel.metadata."""

from core.models.base import metadata
from core.models.pet import Pet
from core.models.user import User

__all__ = ["Pet", "User", "metadata"]
