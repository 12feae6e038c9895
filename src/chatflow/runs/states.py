"""A run's status changes: each checked under the run's lock and written in the transaction of
the event that announces it, so a status and its event exist together or not at all."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection

from chatflow.broadcaster import Broadcaster
from chatflow.db.engine import Database
from chatflow.db.models import Run, utcnow
from chatflow.keylocks import KeyLocks
from chatflow.repositories import runs as runs_repo
from chatflow.runs.outcomes import Ending, interrupted_by_stop
from chatflow.services import events


class RunStates:
    """Moves runs between statuses; one lock per run, so a cancel and a start never both win."""

    def __init__(self, *, db: Database, broadcaster: Broadcaster) -> None:
        self._db = db
        self._broadcaster = broadcaster
        self._locks = KeyLocks()

    async def _status(self, run_id: str) -> str | None:
        async with self._db.read() as session:
            return await runs_repo.get_status(session, run_id=run_id)

    async def start(self, run: Run) -> bool:
        """queued -> running, announced by ``workflow_started``; False if no longer queued."""
        async with self._locks.hold(run.id):
            if await self._status(run.id) != "queued":
                return False  # cancelled before it started
            await events.emit(
                self._broadcaster,
                chat_id=run.chat_id,
                run_id=run.id,
                type="workflow_started",
                message="Workflow execution started",
                total_steps=len(run.steps),
                input={"filename": run.input_name, "version": run.input_version},
                steps=[step["operation"] for step in run.steps],
                with_row=lambda conn: _write_start(conn, run.id),
            )
            return True

    async def step(
        self, *, chat_id: str, run_id: str, index: int, values: dict[str, Any], **event: Any
    ) -> None:
        """Step ``index``'s row gets ``values`` in the transaction of ``event``."""
        await events.emit(
            self._broadcaster,
            chat_id=chat_id,
            run_id=run_id,
            with_row=_writes(runs_repo.write_step, run_id=run_id, index=index, **values),
            **event,
        )

    async def end(
        self,
        *,
        chat_id: str,
        run_id: str,
        ending: Ending,
        expect: tuple[str, ...] = runs_repo.UNFINISHED,
    ) -> bool:
        """Give the run its final status and event; False (nothing done) unless it is in
        one of the ``expect`` statuses."""
        async with self._locks.hold(run_id):
            if await self._status(run_id) not in expect:
                return False
            await events.emit(
                self._broadcaster,
                chat_id=chat_id,
                run_id=run_id,
                with_row=lambda conn: _write_ending(conn, run_id, ending),
                **ending.event(),
            )
            return True

    async def interrupt_unfinished(self, run_ids: list[str] | None = None) -> int:
        """End unfinished runs as interrupted (all of them at start-up, or the given ones)."""
        async with self._db.read() as session:
            unfinished = await runs_repo.list_unfinished(session)
        count = 0
        for run in unfinished:
            if run_ids is None or run.id in run_ids:
                ending = interrupted_by_stop()
                count += await self.end(chat_id=run.chat_id, run_id=run.id, ending=ending)
        return count


def _write_start(conn: Connection, run_id: str) -> dict[str, Any]:
    runs_repo.write_status(conn, run_id=run_id, status="running", started_at=utcnow())
    return {}


def _write_ending(conn: Connection, run_id: str, ending: Ending) -> dict[str, Any]:
    error = ending.error.as_dict() if ending.error is not None else None
    now = utcnow()
    if ending.failed_index is not None:
        runs_repo.write_step(
            conn,
            run_id=run_id,
            index=ending.failed_index,
            status="failed",
            error=error,
            finished_at=now,
        )
    runs_repo.skip_pending_steps(conn, run_id=run_id)
    runs_repo.write_status(conn, run_id=run_id, status=ending.status, error=error, finished_at=now)
    return {}


def _writes(write: Callable[..., None], **bound: Any) -> Callable[[Connection], dict[str, Any]]:
    """``write`` as an event's ``with_row``: it adds no fields to the event."""

    def with_row(conn: Connection) -> dict[str, Any]:
        write(conn, **bound)
        return {}

    return with_row
