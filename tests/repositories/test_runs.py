"""repositories/runs.py against real SQLite: steps in order, writes in the caller's transaction."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Connection

from chatflow.db.engine import Database
from chatflow.db.models import Run, RunStep
from chatflow.repositories import runs as runs_repo
from tests.repositories.conftest import OnDb, add_chat


async def _add_run(db: Database, chat_id: str, run_id: str, steps: int = 2) -> None:
    rows = [
        RunStep(index=i, operation="excel/sort", arguments={}, status="pending")
        for i in reversed(range(steps))  # stored out of order; read back by index
    ]
    run = Run(
        id=run_id,
        chat_id=chat_id,
        status="queued",
        steps=[{}] * steps,
        input_name="in.csv",
        input_version=1,
        step_rows=rows,
    )
    async with db.write() as session:
        await runs_repo.insert(session, run=run)


async def _get(db: Database, chat_id: str, run_id: str) -> Run:
    async with db.read() as session:
        run = await runs_repo.get(session, chat_id=chat_id, run_id=run_id)
    assert run is not None
    return run


def test_a_run_is_found_in_its_chat_only_with_its_steps_in_order(on_db: OnDb) -> None:
    async def scenario(db: Database) -> None:
        await add_chat(db, "c1")
        await add_chat(db, "c2")
        await _add_run(db, "c1", "r1", steps=3)
        await _add_run(db, "c1", "r2")
        await _add_run(db, "c2", "r3")
        run = await _get(db, "c1", "r1")
        assert [s.index for s in run.step_rows] == [0, 1, 2]
        async with db.read() as session:
            assert await runs_repo.get(session, chat_id="c2", run_id="r1") is None
            listed = await runs_repo.list_for_chat(session, chat_id="c1")
            limited = await runs_repo.list_for_chat(session, chat_id="c1", limit=1)
        assert [r.id for r in listed] == ["r2", "r1"]  # newest first
        assert [r.id for r in limited] == ["r2"]
        assert [len(r.step_rows) for r in listed] == [2, 3]

    on_db(scenario)


def test_writes_change_only_what_they_are_given_in_the_callers_transaction(on_db: OnDb) -> None:
    async def scenario(db: Database) -> None:
        await add_chat(db, "c1")
        await _add_run(db, "c1", "r1")
        await _add_run(db, "c1", "r2")
        started = datetime(2026, 1, 2, 3, 4, 0, tzinfo=UTC)
        finished = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

        def start(conn: Connection) -> None:
            moved = runs_repo.write_status(
                conn, run_id="r1", status="running", expect=("queued",), started_at=started
            )
            assert moved
            # Conditional: a run no longer in the expected status is left as it is.
            assert not runs_repo.write_status(
                conn, run_id="r1", status="cancelled", expect=("queued",)
            )
            runs_repo.write_step(conn, run_id="r1", index=0, status="done", message="ok")
            runs_repo.write_step(conn, run_id="r1", index=1, status="running")

        await db.run_write(start)
        async with db.read() as session:
            assert await runs_repo.get_status(session, run_id="r1") == "running"
            assert await runs_repo.get_status(session, run_id="nope") is None
            assert [r.id for r in await runs_repo.list_unfinished(session)] == ["r1", "r2"]
        error = {"code": "boom", "message": "m", "step": 1}

        def fail(conn: Connection) -> None:
            runs_repo.skip_pending_steps(conn, run_id="r1")
            runs_repo.write_status(
                conn,
                run_id="r1",
                status="failed",
                expect=runs_repo.UNFINISHED,
                error=error,
                finished_at=finished,
            )

        await db.run_write(fail)
        run = await _get(db, "c1", "r1")
        assert (run.status, run.error, run.started_at, run.finished_at) == (
            "failed",
            error,
            started,
            finished,
        )
        assert [(s.status, s.message) for s in run.step_rows] == [("done", "ok"), ("skipped", None)]
        async with db.read() as session:
            assert [r.id for r in await runs_repo.list_unfinished(session)] == ["r2"]

    on_db(scenario)


def test_a_failed_transaction_writes_nothing(on_db: OnDb) -> None:
    async def scenario(db: Database) -> None:
        await add_chat(db, "c1")
        await _add_run(db, "c1", "r1")

        def write_then_fail(conn: Connection) -> None:
            runs_repo.write_status(conn, run_id="r1", status="running", expect=("queued",))
            runs_repo.skip_pending_steps(conn, run_id="r1")
            raise RuntimeError("the event could not be stored")

        with pytest.raises(RuntimeError):
            await db.run_write(write_then_fail)
        run = await _get(db, "c1", "r1")
        assert run.status == "queued"
        assert [s.status for s in run.step_rows] == ["pending", "pending"]

    on_db(scenario)
