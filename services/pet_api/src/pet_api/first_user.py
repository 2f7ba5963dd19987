"""Create the first user from FIRST_USER_USERNAME / FIRST_USER_PASSWORD at start-up."""

from __future__ import annotations

import logging

from core.db import Database
from core.settings import AuthSettings
from core.users import ensure_user
from core.web_errors import is_database_unavailable

log = logging.getLogger(__name__)


async def ensure_first_user(*, db: Database, settings: AuthSettings) -> bool:
    """True if the user was created now. A database outage is logged, not raised: the API
    must still start (and answer 503 until the database is back)."""
    username, password = settings.first_user_username, settings.first_user_password
    if not username or password is None:
        return False
    try:
        async with db.session() as session:
            created = await ensure_user(
                session=session, username=username, password=password.get_secret_value()
            )
    except Exception as exc:
        if not is_database_unavailable(exc):
            raise
        log.warning("first user not ensured, database unavailable: %s", type(exc).__name__)
        return False
    if created:
        log.info("first user created", extra={"username": username})
    return created
