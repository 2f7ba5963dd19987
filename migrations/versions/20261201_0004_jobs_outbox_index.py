"""jobs: partial index for the outbox relay's scan of unpublished jobs

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 16:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        'ix_jobs_unpublished_created_at',
        'jobs',
        ['created_at'],
        unique=False,
        postgresql_where="enqueued_at IS NULL AND status = 'queued'",
    )


def downgrade() -> None:
    op.drop_index('ix_jobs_unpublished_created_at', table_name='jobs')
