"""Idempotency keys table: a record is claimed (inserted) before the work, finished after."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
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


async def claim(session: AsyncSession, *, row: IdempotencyRecord, expired_before: datetime) -> bool:
    """Insert ``row``, replacing the key's record if it expired; False when the key is taken
    (UNIQUE (owner, key, scope) decides)."""
    await session.execute(
        delete(IdempotencyRecord).where(
            IdempotencyRecord.owner == row.owner,
            IdempotencyRecord.key == row.key,
            IdempotencyRecord.scope == row.scope,
            IdempotencyRecord.created_at < expired_before,
        )
    )
    try:
        # A savepoint: on PostgreSQL a failed INSERT would otherwise abort the whole
        # transaction, and the expired record's deletion with it.
        async with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return False
    return True


def _pending(token: str) -> Any:
    return (IdempotencyRecord.claim_token == token) & IdempotencyRecord.status.is_(None)


async def heartbeat(session: AsyncSession, *, token: str, at: datetime) -> bool:
    """Mark a pending claim alive; False when it is no longer ours (finished, dropped)."""
    result = await session.execute(
        update(IdempotencyRecord).where(_pending(token)).values(alive_at=at)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def finish(session: AsyncSession, *, token: str, status: int, body: Any) -> bool:
    """Store the answer in a pending claim; False when the claim was taken over meanwhile."""
    result = await session.execute(
        update(IdempotencyRecord)
        .where(_pending(token))
        .values(status=status, body=body, alive_at=None)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def abandon(session: AsyncSession, *, token: str) -> None:
    """Delete a pending claim, so that the request may be retried."""
    await session.execute(delete(IdempotencyRecord).where(_pending(token)))


async def drop_stale(session: AsyncSession, *, record_id: int, alive_before: datetime) -> bool:
    """Delete a pending claim whose owner stopped beating before ``alive_before`` (a record
    that reuses the id is a fresh claim, so it is left alone)."""
    result = await session.execute(
        delete(IdempotencyRecord).where(
            IdempotencyRecord.id == record_id,
            IdempotencyRecord.status.is_(None),
            IdempotencyRecord.alive_at < alive_before,
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def purge(session: AsyncSession, *, before: datetime) -> None:
    await session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < before))
