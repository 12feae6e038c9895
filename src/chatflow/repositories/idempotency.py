"""Idempotency keys table."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from chatflow.db.models import IdempotencyRecord


async def get(
    session: AsyncSession, *, owner: str, key: str, scope: str, since: datetime
) -> IdempotencyRecord | None:
    query = select(IdempotencyRecord).where(
        IdempotencyRecord.owner == owner,
        IdempotencyRecord.key == key,
        IdempotencyRecord.scope == scope,
        IdempotencyRecord.created_at >= since,
    )
    return (await session.execute(query)).scalar_one_or_none()


async def put(session: AsyncSession, *, row: IdempotencyRecord) -> None:
    """Insert, replacing an expired record of the same key."""
    await session.execute(
        delete(IdempotencyRecord).where(
            IdempotencyRecord.owner == row.owner,
            IdempotencyRecord.key == row.key,
            IdempotencyRecord.scope == row.scope,
        )
    )
    session.add(row)
    await session.flush()


async def purge(session: AsyncSession, *, before: datetime) -> None:
    await session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < before))
