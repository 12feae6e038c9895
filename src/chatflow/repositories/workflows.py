"""Saved workflows table: names are unique per owner (API key)."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from chatflow.db.models import SavedWorkflow


def _owned(owner: str | None) -> ColumnElement[bool]:
    return SavedWorkflow.owner.is_(None) if owner is None else SavedWorkflow.owner == owner


async def get(session: AsyncSession, *, owner: str | None, name: str) -> SavedWorkflow | None:
    query = select(SavedWorkflow).where(SavedWorkflow.name == name, _owned(owner))
    return (await session.execute(query)).scalar_one_or_none()


async def insert(session: AsyncSession, *, row: SavedWorkflow) -> SavedWorkflow:
    session.add(row)
    await session.flush()
    return row


async def list_all(session: AsyncSession, *, owner: str | None) -> list[SavedWorkflow]:
    """By name in code point order on every database (see files.list_for_chat)."""
    query = select(SavedWorkflow).where(_owned(owner))
    return sorted((await session.execute(query)).scalars(), key=lambda row: row.name)


async def remove(session: AsyncSession, *, owner: str | None, name: str) -> bool:
    result = await session.execute(
        delete(SavedWorkflow).where(SavedWorkflow.name == name, _owned(owner))
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
