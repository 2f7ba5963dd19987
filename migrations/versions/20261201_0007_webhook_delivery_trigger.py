"""caller webhooks: a trigger on jobs records each delivery with the transition that causes it,
with the job as it was at that moment

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every UPDATE that changes a job's status (whichever statement of core.jobs, today's or a future
# one) inserts the caller's delivery in the same statement: `start` when the job begins running,
# `completed` when it ends, if its webhook_events_filter (NULL: all) asks for that event. The
# job is copied as it is at that moment, with its media (an AFTER trigger runs once the whole
# statement is done, so it sees the media rows a CTE of the same statement inserted); retries
# send that copy again, even if the job changed since. The function runs in UTC so that the copy's
# timestamps read as the API shows them.
CREATE_FUNCTION = """
CREATE FUNCTION jobs_record_webhook_delivery() RETURNS trigger
LANGUAGE plpgsql SET timezone = 'UTC' AS $$
DECLARE
    event text := CASE
        WHEN NEW.status = 'running' THEN 'start'
        WHEN NEW.status IN ('succeeded', 'failed', 'canceled') THEN 'completed'
    END;
BEGIN
    IF event IS NULL
       OR NOT event = ANY(coalesce(NEW.webhook_events_filter, ARRAY['start', 'completed'])) THEN
        RETURN NULL;
    END IF;
    INSERT INTO webhook_deliveries
        (job_id, event, webhook_id, url, status, attempts, next_attempt_at, job,
         created_at, updated_at)
    VALUES (
        NEW.id, event, 'msg_' || replace(gen_random_uuid()::text, '-', ''), NEW.webhook,
        'pending', 0, now(),
        to_jsonb(NEW) || jsonb_build_object('media', coalesce(
            (SELECT jsonb_agg(jsonb_build_object(
                        'index', m.index, 'storage_key', m.storage_key,
                        'content_type', m.content_type, 'size_bytes', m.size_bytes,
                        'sha256', m.sha256, 'source_url', m.source_url,
                        'expired', m.expired_at IS NOT NULL) ORDER BY m.index)
             FROM job_media m WHERE m.job_id = NEW.id),
            '[]'::jsonb)),
        now(), now());
    RETURN NULL;
END
$$
"""

# `UPDATE OF status`: statements that leave the status alone (touch, logs, progress) never
# even evaluate the WHEN clause.
CREATE_TRIGGER = """
CREATE TRIGGER jobs_record_webhook_delivery
AFTER UPDATE OF status ON jobs
FOR EACH ROW
WHEN (NEW.webhook IS NOT NULL AND OLD.status IS DISTINCT FROM NEW.status)
EXECUTE FUNCTION jobs_record_webhook_delivery()
"""


def upgrade() -> None:
    # Nothing wrote deliveries before this revision, so the column can be required at once.
    op.add_column(
        'webhook_deliveries',
        sa.Column('job', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    )
    op.execute(CREATE_FUNCTION)
    op.execute(CREATE_TRIGGER)


def downgrade() -> None:
    op.execute('DROP TRIGGER jobs_record_webhook_delivery ON jobs')
    op.execute('DROP FUNCTION jobs_record_webhook_delivery()')
    op.drop_column('webhook_deliveries', 'job')
