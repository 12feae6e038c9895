"""The alembic_version table: which migration the database is at."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


async def current_revisions(session: AsyncSession) -> set[str]:
    """The revisions alembic recorded (one per branch head; empty before the first upgrade)."""
    rows = await session.execute(text("SELECT version_num FROM alembic_version"))
    return {str(revision) for revision in rows.scalars()}
