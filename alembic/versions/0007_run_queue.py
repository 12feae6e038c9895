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


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
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
