"""A run's status changes: each a conditional update written in the transaction of the event
that announces it, so a status and its event exist together or not at all."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection

from chatflow import logs
from chatflow.broadcaster import Broadcaster
from chatflow.db.engine import Database
from chatflow.db.models import Run, utcnow
from chatflow.metrics import Metrics
from chatflow.repositories import runs as runs_repo
from chatflow.runs.outcomes import Ending, interrupted_by_stop
from chatflow.services import events, messages
from chatflow.services.events import Declined

log = logging.getLogger(__name__)


class RunStates:
    """Moves runs between statuses.  Every move is a conditional update in the database, in the
    transaction of the event that announces it, so a cancel and a start (or two endings) never
    both win, whichever processes they come from."""

    def __init__(
        self, *, db: Database, broadcaster: Broadcaster, metrics: Metrics | None = None
    ) -> None:
        self._db = db
        self._broadcaster = broadcaster
        self._metrics = metrics

    async def start(self, run: Run) -> bool:
        """queued -> running, announced by ``workflow_started``; False if no longer queued."""
        stored = await events.emit(
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
        if stored is None:
            return False
        waited = (utcnow() - run.created_at).total_seconds()
        if self._metrics is not None:
            self._metrics.run_started(waited)
        with logs.bind(run_id=run.id, chat_id=run.chat_id):
            log.info("run %s started after %.3f s in the queue", run.id, waited)
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
        note: tuple[str, dict[str, Any]] | None = None,
    ) -> bool:
        """Give the run its final status and event, and post ``note`` (text, data) to the
        transcript, all in one transaction; False (nothing done) unless it is in one of the
        ``expect`` statuses.  One transaction, so whoever sees the run ended (a client of
        ``?wait=true`` on any process) also finds the note."""
        moved: list[bool] = []

        def write_ending(conn: Connection) -> dict[str, Any]:
            fields = _write_ending(conn, run_id, ending, expect)  # Declined if it has ended
            moved.append(True)
            return fields

        bodies = [
            events.event_body(
                chat_id=chat_id, run_id=run_id, with_row=write_ending, **ending.event()
            )
        ]
        if note is not None:
            text, data = note

            def write_note(conn: Connection) -> dict[str, Any]:
                if not moved:
                    raise Declined()  # no ending, nothing to say
                return messages.record(conn, chat_id=chat_id, role="system", text=text, data=data)

            bodies.append(
                events.event_body(
                    chat_id=chat_id, type="message_added", message=text, with_row=write_note
                )
            )
        stored = await events.emit_all(self._broadcaster, chat_id=chat_id, bodies=bodies)
        if stored[0] is None:
            return False
        if self._metrics is not None:
            self._metrics.run_ended(ending.status)
        with logs.bind(run_id=run_id, chat_id=chat_id):
            log.info("run %s ended %s", run_id, ending.status)
        return True

    async def request_cancel(self, run_id: str, reason: str) -> bool:
        """Record a cancel for a queued or running run; False if it ended or is sealed."""
        async with self._db.write() as session:
            return await runs_repo.request_cancel(session, run_id=run_id, reason=reason)

    async def seal(self, run_id: str) -> bool:
        """Pass the run's last cancel check; False if a cancel was recorded first."""
        async with self._db.write() as session:
            return await runs_repo.seal(session, run_id=run_id)

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
    if not runs_repo.write_status(
        conn, run_id=run_id, status="running", expect=("queued",), started_at=utcnow()
    ):
        raise Declined()  # cancelled before it started
    return {}


def _write_ending(
    conn: Connection, run_id: str, ending: Ending, expect: tuple[str, ...]
) -> dict[str, Any]:
    error = ending.error.as_dict() if ending.error is not None else None
    now = utcnow()
    # The status first: if another process ended the run, nothing else may be written.
    if not runs_repo.write_status(
        conn, run_id=run_id, status=ending.status, expect=expect, error=error, finished_at=now
    ):
        raise Declined()
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
    return {}


def _writes(write: Callable[..., None], **bound: Any) -> Callable[[Connection], dict[str, Any]]:
    """``write`` as an event's ``with_row``: it adds no fields to the event."""

    def with_row(conn: Connection) -> dict[str, Any]:
        write(conn, **bound)
        return {}

    return with_row
