"""Runs and run_steps tables."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from chatflow.db.models import Run, RunStep

UNFINISHED = ("queued", "running")


async def insert(session: AsyncSession, *, run: Run) -> Run:
    session.add(run)
    await session.flush()
    return run


async def get(session: AsyncSession, *, chat_id: str, run_id: str) -> Run | None:
    query = (
        select(Run)
        .where(Run.id == run_id, Run.chat_id == chat_id)
        .options(selectinload(Run.step_rows))
    )
    return (await session.execute(query)).scalar_one_or_none()


async def list_for_chat(session: AsyncSession, *, chat_id: str, limit: int = 100) -> list[Run]:
    query = (
        select(Run)
        .where(Run.chat_id == chat_id)
        .order_by(Run.created_at.desc(), Run.id)
        .limit(limit)
        .options(selectinload(Run.step_rows))
    )
    return list((await session.execute(query)).scalars())


async def list_unfinished(session: AsyncSession) -> list[Run]:
    query = select(Run).where(Run.status.in_(UNFINISHED)).order_by(Run.created_at)
    return list((await session.execute(query)).scalars())


async def get_status(session: AsyncSession, *, run_id: str) -> str | None:
    query = select(Run.status).where(Run.id == run_id)
    return (await session.execute(query)).scalar_one_or_none()


# The writes below are synchronous, in the caller's write transaction: the one that stores the
# event announcing them (see services/events.py ``with_row``).


def write_status(
    conn: Connection,
    *,
    run_id: str,
    status: str,
    error: dict[str, Any] | None = None,
    started_at: datetime | None = None,
    finished_at: datetime | None = None,
) -> None:
    values: dict[str, Any] = {"status": status}
    if error is not None:
        values["error"] = error
    if started_at is not None:
        values["started_at"] = started_at
    if finished_at is not None:
        values["finished_at"] = finished_at
    conn.execute(update(Run).where(Run.id == run_id).values(**values))


def write_step(conn: Connection, *, run_id: str, index: int, **values: Any) -> None:
    conn.execute(
        update(RunStep).where(RunStep.run_id == run_id, RunStep.index == index).values(**values)
    )


def skip_pending_steps(conn: Connection, *, run_id: str) -> None:
    conn.execute(
        update(RunStep)
        .where(RunStep.run_id == run_id, RunStep.status.in_(("pending", "running")))
        .values(status="skipped")
    )
