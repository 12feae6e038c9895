"""idempotency keys are claimed before the work starts

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A record is inserted (claimed) before the work, so UNIQUE (owner, key, scope) decides which
# of two processes does it. Until the work answers, status and body are NULL and alive_at is
# the owner's last heartbeat; a claim whose heartbeat stopped belongs to a dead process.
# claim_token names one claim: SQLite reuses the id of a deleted last row, so after a
# takeover the old owner's id could name the new owner's record.


def upgrade() -> None:
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.alter_column("status", existing_type=sa.Integer(), nullable=True)
        batch_op.alter_column("body", existing_type=sa.JSON(), nullable=True)
        batch_op.add_column(sa.Column("alive_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("claim_token", sa.String(length=32), nullable=True))


def downgrade() -> None:
    # Unfinished claims have no answer to keep: the requests they stand for may be retried.
    op.execute("DELETE FROM idempotency_keys WHERE status IS NULL")
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.drop_column("claim_token")
        batch_op.drop_column("alive_at")
        batch_op.alter_column("body", existing_type=sa.JSON(), nullable=False)
        batch_op.alter_column("status", existing_type=sa.Integer(), nullable=False)
