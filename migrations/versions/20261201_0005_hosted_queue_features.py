"""hosted-queue features: priority, deadlines, logs and progress, caller retries, media
expiry, caller webhooks (secrets, deliveries, attempts) and rate-limit windows

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _tz() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column('jobs', sa.Column('priority', sa.String(length=8), server_default='normal', nullable=False))
    op.add_column('jobs', sa.Column('deadline_at', _tz(), nullable=True))
    op.add_column('jobs', sa.Column('cancel_reason', sa.String(length=16), nullable=True))
    op.add_column('jobs', sa.Column('webhook', sa.Text(), nullable=True))
    op.add_column('jobs', sa.Column('webhook_events_filter', postgresql.ARRAY(sa.Text()), nullable=True))
    op.add_column('jobs', sa.Column('logs', sa.Text(), nullable=True))
    op.add_column('jobs', sa.Column('progress', sa.Float(), nullable=True))
    op.add_column('jobs', sa.Column('retries', sa.SmallInteger(), server_default=sa.text('0'), nullable=False))
    op.add_column(
        'jobs',
        sa.Column('retired_prediction_ids', postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
    )
    op.create_check_constraint('priority_known', 'jobs', "priority IN ('low', 'normal', 'high')")
    op.create_check_constraint('cancel_reason_known', 'jobs', "cancel_reason IN ('caller', 'deadline')")
    op.create_index(
        'ix_jobs_queued_priority_created_at', 'jobs', ['priority', 'created_at'],
        unique=False, postgresql_where="status = 'queued'",
    )
    op.create_index(
        'ix_jobs_unfinished_deadline_at', 'jobs', ['deadline_at'],
        unique=False, postgresql_where="deadline_at IS NOT NULL AND status IN ('queued', 'running')",
    )
    op.add_column('job_media', sa.Column('expired_at', _tz(), nullable=True))

    op.create_table(
        'webhook_secrets',
        sa.Column('owner_id', sa.Uuid(), nullable=False),
        sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column('previous_key', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column('previous_key_expires_at', _tz(), nullable=True),
        sa.Column('created_at', _tz(), server_default=sa.text('now()'), nullable=False),
        sa.Column('rotated_at', _tz(), nullable=True),
        sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_webhook_secrets_owner_id_users'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('owner_id', name=op.f('pk_webhook_secrets')),
    )
    op.create_table(
        'webhook_deliveries',
        sa.Column('id', sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column('job_id', sa.Uuid(), nullable=False),
        sa.Column('event', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column('webhook_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column('url', sa.Text(), nullable=False),
        sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', _tz(), nullable=False),
        sa.Column('created_at', _tz(), server_default=sa.text('now()'), nullable=False),
        sa.Column('updated_at', _tz(), server_default=sa.text('now()'), nullable=False),
        sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_webhook_deliveries_job_id_jobs'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_deliveries')),
        sa.UniqueConstraint('webhook_id', name=op.f('uq_webhook_deliveries_webhook_id')),
    )
    op.create_index('ix_webhook_deliveries_job_id', 'webhook_deliveries', ['job_id'], unique=False)
    op.create_index(
        'ix_webhook_deliveries_pending_next_attempt_at', 'webhook_deliveries', ['next_attempt_at'],
        unique=False, postgresql_where="status = 'pending'",
    )
    op.create_table(
        'webhook_attempts',
        sa.Column('id', sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column('delivery_id', sa.BigInteger(), nullable=False),
        sa.Column('attempt', sa.Integer(), nullable=False),
        sa.Column('status_code', sa.Integer(), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('duration_ms', sa.Integer(), nullable=False),
        sa.Column('created_at', _tz(), server_default=sa.text('now()'), nullable=False),
        sa.ForeignKeyConstraint(
            ['delivery_id'], ['webhook_deliveries.id'],
            name=op.f('fk_webhook_attempts_delivery_id_webhook_deliveries'), ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_attempts')),
    )
    op.create_index('ix_webhook_attempts_delivery_id', 'webhook_attempts', ['delivery_id'], unique=False)
    op.create_table(
        'rate_windows',
        sa.Column('owner_id', sa.Uuid(), nullable=False),
        sa.Column('window_start', _tz(), nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_rate_windows_owner_id_users'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('owner_id', 'window_start', name=op.f('pk_rate_windows')),
    )
    op.create_index('ix_rate_windows_window_start', 'rate_windows', ['window_start'], unique=False)


def downgrade() -> None:
    op.drop_table('rate_windows')
    op.drop_table('webhook_attempts')
    op.drop_table('webhook_deliveries')
    op.drop_table('webhook_secrets')
    op.drop_column('job_media', 'expired_at')
    op.drop_index('ix_jobs_unfinished_deadline_at', table_name='jobs')
    op.drop_index('ix_jobs_queued_priority_created_at', table_name='jobs')
    op.drop_constraint('cancel_reason_known', 'jobs', type_='check')
    op.drop_constraint('priority_known', 'jobs', type_='check')
    for column in (
        'retired_prediction_ids', 'retries', 'progress', 'logs', 'webhook_events_filter',
        'webhook', 'cancel_reason', 'deadline_at', 'priority',
    ):
        op.drop_column('jobs', column)
