"""Runs and run_steps tables."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select, update
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


async def count_by_status(session: AsyncSession) -> dict[str, int]:
    """How many runs have each status (one pass over the status index)."""
    query = select(Run.status, func.count()).group_by(Run.status)
    return {status: count for status, count in await session.execute(query)}


async def get_status(session: AsyncSession, *, run_id: str) -> str | None:
    query = select(Run.status).where(Run.id == run_id)
    return (await session.execute(query)).scalar_one_or_none()


async def list_unfinished_of_chat(session: AsyncSession, *, chat_id: str) -> list[Run]:
    query = (
        select(Run)
        .where(Run.chat_id == chat_id, Run.status.in_(UNFINISHED))
        .order_by(Run.created_at, Run.id)
    )
    return list((await session.execute(query)).scalars())


async def request_cancel(session: AsyncSession, *, run_id: str, reason: str) -> bool:
    """Record a cancel unless the run has ended or is sealed; True if it landed."""
    landed = await session.execute(
        update(Run)
        .where(Run.id == run_id, Run.status.in_(UNFINISHED), Run.sealed.is_(False))
        .values(cancel_reason=func.coalesce(Run.cancel_reason, reason))
    )
    return bool(landed.rowcount)  # type: ignore[attr-defined]


async def seal(session: AsyncSession, *, run_id: str) -> bool:
    """Pass the run's last cancel check: True if it is running and no cancel came first."""
    sealed = await session.execute(
        update(Run)
        # Still running: a run another process has ended (its worker taken for dead) must
        # not go on to record outputs.
        .where(Run.id == run_id, Run.status == "running", Run.cancel_reason.is_(None))
        .values(sealed=True)
    )
    return bool(sealed.rowcount)  # type: ignore[attr-defined]


# The writes below are synchronous, in the caller's write transaction: the one that stores the
# event announcing them (see services/events.py ``with_row``).


def write_status(
    conn: Connection,
    *,
    run_id: str,
    status: str,
    expect: tuple[str, ...],
    error: dict[str, Any] | None = None,
    started_at: datetime | None = None,
    finished_at: datetime | None = None,
) -> bool:
    """Move the run to ``status`` if it is in one of ``expect``; False if it was not.

    The check is the UPDATE's own WHERE, so of two processes moving one run at once the
    second finds it moved (PostgreSQL re-reads the row after the first commits)."""
    values: dict[str, Any] = {"status": status}
    if error is not None:
        values["error"] = error
    if started_at is not None:
        values["started_at"] = started_at
    if finished_at is not None:
        values["finished_at"] = finished_at
    moved = conn.execute(
        update(Run).where(Run.id == run_id, Run.status.in_(expect)).values(**values)
    )
    return bool(moved.rowcount)


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
