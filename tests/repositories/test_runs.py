"""repositories/runs.py against real SQLite: steps in order, guarded status changes."""

from __future__ import annotations

from datetime import UTC, datetime

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


def test_start_and_cancel_only_apply_to_a_queued_run(on_db: OnDb) -> None:
    async def scenario(db: Database) -> None:
        await add_chat(db, "c1")
        await _add_run(db, "c1", "started")
        await _add_run(db, "c1", "cancelled")
        async with db.write() as session:
            assert await runs_repo.start_if_queued(session, run_id="started") is True
            assert await runs_repo.start_if_queued(session, run_id="started") is False
            assert await runs_repo.cancel_if_queued(session, run_id="started") is False
            assert await runs_repo.cancel_if_queued(session, run_id="cancelled") is True
            assert await runs_repo.start_if_queued(session, run_id="cancelled") is False
        started = await _get(db, "c1", "started")
        assert started.status == "running" and started.started_at is not None
        assert [s.status for s in started.step_rows] == ["pending", "pending"]
        cancelled = await _get(db, "c1", "cancelled")
        assert cancelled.status == "cancelled" and cancelled.finished_at is not None
        assert cancelled.error is not None and cancelled.error["code"] == "cancelled"
        assert [s.status for s in cancelled.step_rows] == ["skipped", "skipped"]

    on_db(scenario)


def test_status_and_step_updates_change_only_what_they_are_given(on_db: OnDb) -> None:
    async def scenario(db: Database) -> None:
        await add_chat(db, "c1")
        await _add_run(db, "c1", "r1")
        await _add_run(db, "c1", "r2")
        finished = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
        async with db.write() as session:
            await runs_repo.set_status(session, run_id="r1", status="running")
            await runs_repo.set_step(session, run_id="r1", index=0, status="done", message="ok")
            await runs_repo.set_step(session, run_id="r1", index=1, status="running")
            await runs_repo.skip_pending_steps(session, run_id="r1")
        async with db.read() as session:
            unfinished = await runs_repo.list_unfinished(session)
        assert [r.id for r in unfinished] == ["r1", "r2"]
        error = {"code": "boom", "message": "m", "step": 1}
        async with db.write() as session:
            await runs_repo.set_status(
                session, run_id="r1", status="failed", error=error, finished_at=finished
            )
        run = await _get(db, "c1", "r1")
        assert (run.status, run.error, run.finished_at, run.started_at) == (
            "failed",
            error,
            finished,
            None,
        )
        assert [(s.status, s.message) for s in run.step_rows] == [("done", "ok"), ("skipped", None)]
        async with db.read() as session:
            assert [r.id for r in await runs_repo.list_unfinished(session)] == ["r2"]

    on_db(scenario)
