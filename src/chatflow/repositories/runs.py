"""Runs and run_steps tables."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
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


async def set_status(
    session: AsyncSession,
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
    await session.execute(update(Run).where(Run.id == run_id).values(**values))


async def set_step(session: AsyncSession, *, run_id: str, index: int, **values: Any) -> None:
    await session.execute(
        update(RunStep).where(RunStep.run_id == run_id, RunStep.index == index).values(**values)
    )


async def start_if_queued(session: AsyncSession, *, run_id: str) -> bool:
    """Mark a queued run running; False if it was cancelled (or started) meanwhile."""
    result = await session.execute(
        update(Run)
        .where(Run.id == run_id, Run.status == "queued")
        .values(status="running", started_at=datetime.now(UTC))
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def cancel_if_queued(session: AsyncSession, *, run_id: str) -> bool:
    """Mark a run cancelled if it has not started; False if it already had."""
    error = {"code": "cancelled", "message": "the run was cancelled", "step": None}
    result = await session.execute(
        update(Run)
        .where(Run.id == run_id, Run.status == "queued")
        .values(status="cancelled", error=error, finished_at=datetime.now(UTC))
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return False
    await skip_pending_steps(session, run_id=run_id)
    return True


async def skip_pending_steps(session: AsyncSession, *, run_id: str) -> None:
    await session.execute(
        update(RunStep)
        .where(RunStep.run_id == run_id, RunStep.status.in_(("pending", "running")))
        .values(status="skipped")
    )
