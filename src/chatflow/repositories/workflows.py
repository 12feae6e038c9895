"""Saved workflows table."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from chatflow.db.models import SavedWorkflow


async def get(session: AsyncSession, *, name: str) -> SavedWorkflow | None:
    query = select(SavedWorkflow).where(SavedWorkflow.name == name)
    return (await session.execute(query)).scalar_one_or_none()


async def insert(session: AsyncSession, *, row: SavedWorkflow) -> SavedWorkflow:
    session.add(row)
    await session.flush()
    return row


async def list_all(session: AsyncSession) -> list[SavedWorkflow]:
    query = select(SavedWorkflow).order_by(SavedWorkflow.name)
    return list((await session.execute(query)).scalars())


async def remove(session: AsyncSession, *, name: str) -> bool:
    result = await session.execute(delete(SavedWorkflow).where(SavedWorkflow.name == name))
    return bool(result.rowcount)  # type: ignore[attr-defined]
