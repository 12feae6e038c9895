"""file sizes are 64-bit on every database

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite's INTEGER already holds 64 bits; PostgreSQL's is 32, so a file of 2 GiB or more could
# not be recorded there. Declared BIGINT on both, so both migrate to the same schema.


def upgrade() -> None:
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.alter_column(
            "size", existing_type=sa.Integer(), type_=sa.BigInteger(), existing_nullable=False
        )


def downgrade() -> None:
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.alter_column(
            "size", existing_type=sa.BigInteger(), type_=sa.Integer(), existing_nullable=False
        )
