"""jobs: NOTIFY job_changed (payload: the job id) when a change a caller can see is committed

Every gateway LISTENs on one connection and wakes the streams and waits (GET
/jobs/{id}/events, POST /generate with Prefer: wait) that follow the job, whichever process
made the change. Only status, logs, progress and last_error changes notify (the WHEN clause
is evaluated before the function is called, so other updates cost nothing): NOTIFY takes a
database-wide lock at commit, so a job pays it a few times on its way through, not at every
write (the outbox marker, attempt counts and the stale clock never notify).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 10:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION notify_job_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('job_changed', NEW.id::text);
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER jobs_notify_changed AFTER UPDATE ON jobs FOR EACH ROW
        WHEN (OLD.status IS DISTINCT FROM NEW.status
              OR OLD.logs IS DISTINCT FROM NEW.logs
              OR OLD.progress IS DISTINCT FROM NEW.progress
              OR OLD.last_error IS DISTINCT FROM NEW.last_error)
        EXECUTE FUNCTION notify_job_changed()
        """
    )


def downgrade() -> None:
    op.execute('DROP TRIGGER jobs_notify_changed ON jobs')
    op.execute('DROP FUNCTION notify_job_changed()')
