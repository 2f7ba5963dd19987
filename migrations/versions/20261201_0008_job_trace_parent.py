"""jobs.trace_parent: the W3C trace context of the request that created a job, so the relay
and the worker continue one trace per job (only written with tracing on)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 20:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: a metadata-only change, no table rewrite.
    op.add_column('jobs', sa.Column('trace_parent', sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column('jobs', 'trace_parent')
