"""One schema, two descriptions: the table models (libs/core/src/core/models) and the Alembic
history (migrations/) must describe the same database, and every migration must undo."""

from __future__ import annotations

import os
import subprocess
import sys

from testkit.database import REPO_ROOT, migrate


def alembic(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alembic", *args],
        cwd=REPO_ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
    )


def test_the_models_match_the_migrated_database(database_url: str) -> None:
    # `alembic check` compares the models with the upgraded database: any column, index or
    # table that one has and the other lacks is a failure.
    checked = alembic(database_url, "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "No new upgrade operations detected" in checked.stdout + checked.stderr


def test_every_migration_downgrades_and_upgrades_again(database_url: str) -> None:
    down = alembic(database_url, "downgrade", "base")
    try:
        assert down.returncode == 0, down.stderr
    finally:
        migrate(database_url)  # leave the session's database as the other tests expect
