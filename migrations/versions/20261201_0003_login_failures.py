"""login failures, for throttling password guessing on POST /auth/token

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'login_failures',
        sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('window_started_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('key', name=op.f('pk_login_failures')),
    )
    op.create_index(
        'ix_login_failures_window_started_at',
        'login_failures',
        ['window_started_at'],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index('ix_login_failures_window_started_at', table_name='login_failures')
    op.drop_table('login_failures')
