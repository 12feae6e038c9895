"""runs carry their cancel request, their seal and their job; procrastinate's tables on PostgreSQL

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence
from importlib import resources

import sqlalchemy as sa
from alembic import op
from sqlalchemy.util import await_only

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A cancel and a run's last check race across processes, so both are conditional updates of
# these columns (repositories/runs.py): the one that writes first wins, whichever process it is.
# queue_job_id is the procrastinate job that executes the run (PostgreSQL only; NULL on SQLite).
#
# procrastinate's schema is applied here, not by its own CLI, so one `chatflow db upgrade`
# brings everything to head.  It is read from the installed package, whose version pyproject
# pins (==): upgrading procrastinate means a new migration that applies its delta files.


# procrastinate NOTIFYs its workers when a job is inserted, not when one ends.  A chat's next
# run was inserted long before, while its lock was held, so without this it would wait for a
# worker's next poll (5 s) instead of starting as soon as the run before it ends.
_LOCK_RELEASED = """
CREATE FUNCTION chatflow_notify_lock_released() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    payload TEXT := json_build_object('type', 'job_inserted', 'job_id', NEW.id)::text;
BEGIN
    PERFORM pg_notify('procrastinate_queue_v1#' || NEW.queue_name, payload);
    PERFORM pg_notify('procrastinate_any_queue_v1', payload);
    RETURN NEW;
END;
$$;
CREATE TRIGGER chatflow_lock_released
    AFTER UPDATE OF status ON procrastinate_jobs
    FOR EACH ROW WHEN (
        NEW.lock IS NOT NULL
        AND OLD.status IN ('todo', 'doing')
        AND NEW.status NOT IN ('todo', 'doing')
    )
    EXECUTE PROCEDURE chatflow_notify_lock_released();
"""


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("cancel_reason", sa.String(16), nullable=True))
        batch.add_column(
            sa.Column("sealed", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("queue_job_id", sa.BigInteger(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        schema = resources.files("procrastinate.sql").joinpath("schema.sql").read_text()
        # asyncpg runs a script of many statements only outside a prepared statement.
        raw = op.get_bind().connection.driver_connection
        await_only(raw.execute(schema))
        await_only(raw.execute(_LOCK_RELEASED))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS chatflow_notify_lock_released() CASCADE")
        op.execute(
            "DROP TABLE IF EXISTS procrastinate_events, procrastinate_periodic_defers, "
            "procrastinate_jobs, procrastinate_workers CASCADE"
        )
        op.execute("DROP TYPE IF EXISTS procrastinate_job_to_defer_v1 CASCADE")
        op.execute("DROP TYPE IF EXISTS procrastinate_job_event_type CASCADE")
        op.execute("DROP TYPE IF EXISTS procrastinate_job_status CASCADE")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("queue_job_id")
        batch.drop_column("sealed")
        batch.drop_column("cancel_reason")
