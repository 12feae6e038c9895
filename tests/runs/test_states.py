"""A run's status changes on a real SQLite file: each one and its event commit together, and a
cancel racing a start leaves exactly one of them done."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from chatflow.broadcaster import Broadcaster
from chatflow.db.engine import Database
from chatflow.db.migrate import upgrade
from chatflow.db.models import Run, RunStep
from chatflow.repositories import chats as chats_repo
from chatflow.repositories import events as events_repo
from chatflow.repositories import runs as runs_repo
from chatflow.runs import outcomes
from chatflow.runs.outcomes import RunError
from chatflow.runs.states import RunStates
from chatflow.services import events
from tests.postgres import PostgresDatabases

CHAT = "chat-1"


async def _run(db: Database, run_id: str, status: str = "queued") -> Run:
    run = Run(
        id=run_id,
        chat_id=CHAT,
        status=status,
        steps=[{"operation": "excel/sort", "arguments": {}}] * 2,
        input_name="data.xlsx",
        input_version=1,
    )
    run.step_rows = [
        RunStep(index=i, operation="excel/sort", arguments={}, status="pending") for i in range(2)
    ]
    async with db.write() as session:
        await runs_repo.insert(session, run=run)
    return run


async def _stored(db: Database, run_id: str) -> tuple[str, Any, list[str], list[str]]:
    """The run's status, error and step statuses, and the types of its stored events."""
    async with db.read() as session:
        run = await runs_repo.get(session, chat_id=CHAT, run_id=run_id)
    assert run is not None
    stored = await events.list_since(db, chat_id=CHAT, since=0)
    types = [event["type"] for event in stored if event["run_id"] == run_id]
    return run.status, run.error, [step.status for step in run.step_rows], types


def scenario(body: Callable[[Database, RunStates], Awaitable[None]], tmp_path: Path) -> None:
    async def main() -> None:
        url = f"sqlite+aiosqlite:///{tmp_path / 'runs.db'}"
        await asyncio.to_thread(upgrade, url)
        db = Database(url)
        broadcaster = Broadcaster(store=events.make_store(db))
        try:
            async with db.write() as session:
                await chats_repo.insert(session, chat_id=CHAT, title=None, owner=None)
            await body(db, RunStates(db=db, broadcaster=broadcaster))
        finally:
            await broadcaster.aclose()
            await db.dispose()

    asyncio.run(main())


def test_a_run_started_stepped_and_failed_is_stored_with_its_events(tmp_path: Path) -> None:
    async def body(db: Database, states: RunStates) -> None:
        run = await _run(db, "r1")
        assert await states.start(run)
        await states.step(
            chat_id=CHAT,
            run_id="r1",
            index=0,
            values={"status": "running"},
            type="step_started",
            message="Step 1/2 started",
        )
        assert (await _stored(db, "r1"))[::2] == ("running", ["running", "pending"])
        error = RunError("column_not_found", "no column 'x'", 1)
        ending = outcomes.failed(error, 0)
        assert await states.end(chat_id=CHAT, run_id="r1", ending=ending)
        assert await _stored(db, "r1") == (
            "failed",
            error.as_dict(),
            ["failed", "skipped"],
            ["workflow_started", "step_started", "workflow_failed"],
        )
        # Ended once: a second ending changes nothing and announces nothing.
        assert not await states.end(chat_id=CHAT, run_id="r1", ending=outcomes.internal_error())
        assert (await _stored(db, "r1"))[0] == "failed"

    scenario(body, tmp_path)


def test_a_status_change_whose_event_cannot_be_stored_does_not_happen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def body(db: Database, states: RunStates) -> None:
        run = await _run(db, "r1")

        def full_disk(*args: Any, **kwargs: Any) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(events_repo, "insert_events", full_disk)
        with pytest.raises(OSError):
            await states.start(run)
        with pytest.raises(OSError):
            await states.end(chat_id=CHAT, run_id="r1", ending=outcomes.cancelled_before_start())
        monkeypatch.undo()
        assert await _stored(db, "r1") == ("queued", None, ["pending", "pending"], [])

    scenario(body, tmp_path)


async def _race_start_and_cancel(
    db: Database, starter: RunStates, canceller: RunStates, run_id: str, *, cancel_first: bool
) -> str:
    """Start and cancel one queued run at once; exactly one must win. The status left."""
    run = await _run(db, run_id)
    cancel = canceller.end(
        chat_id=CHAT, run_id=run.id, ending=outcomes.cancelled_before_start(), expect=("queued",)
    )
    if cancel_first:
        cancelled, started = await asyncio.gather(cancel, starter.start(run))
    else:
        started, cancelled = await asyncio.gather(starter.start(run), cancel)
    assert started != cancelled
    status, _, _, types = await _stored(db, run.id)
    expected = ("running", ["workflow_started"])
    assert (status, types) == (expected if started else ("cancelled", ["workflow_cancelled"]))
    return status


def test_a_cancel_racing_a_start_leaves_exactly_one_done(tmp_path: Path) -> None:
    async def body(db: Database, states: RunStates) -> None:
        for attempt in range(10):
            await _race_start_and_cancel(
                db, states, states, f"r{attempt}", cancel_first=attempt % 2 == 0
            )

    scenario(body, tmp_path)


def test_interrupting_unfinished_runs_ends_the_given_ones_only(tmp_path: Path) -> None:
    async def body(db: Database, states: RunStates) -> None:
        await _run(db, "queued")
        await _run(db, "running", status="running")
        await _run(db, "spared")
        assert await states.interrupt_unfinished(["queued", "running"]) == 2
        interrupted = outcomes.interrupted_by_stop().error
        assert interrupted is not None
        for run_id in ("queued", "running"):
            status, error, steps, types = await _stored(db, run_id)
            assert (status, steps, types) == (
                "interrupted",
                ["skipped", "skipped"],
                ["workflow_failed"],
            )
            assert error == interrupted.as_dict()
        assert (await _stored(db, "spared"))[0] == "queued"
        assert await states.interrupt_unfinished() == 1  # at start-up: all of them

    scenario(body, tmp_path)


def test_a_sealed_run_refuses_a_cancel_and_a_cancelled_one_cannot_be_sealed(
    tmp_path: Path,
) -> None:
    async def body(db: Database, states: RunStates) -> None:
        await _run(db, "sealed", status="running")
        assert await states.seal("sealed")  # no cancel came first: it records its outputs
        assert not await states.request_cancel("sealed", "cancelled")  # refused: a 409
        await _run(db, "cancelled", status="running")
        assert await states.request_cancel("cancelled", "cancelled")
        assert not await states.seal("cancelled")  # the executor stops it instead
        assert await states.request_cancel("cancelled", "shutdown")  # landed; first reason kept
        async with db.read() as session:
            run = await runs_repo.get(session, chat_id=CHAT, run_id="cancelled")
        assert run is not None and run.cancel_reason == "cancelled"
        await _run(db, "ended", status="interrupted")  # by a sweeper, its worker taken for dead
        assert not await states.request_cancel("ended", "cancelled")
        assert not await states.seal("ended")  # so the worker, if alive after all, records nothing

    scenario(body, tmp_path)


def two_processes(
    body: Callable[[RunStates, RunStates, Database], Awaitable[None]], url: str
) -> None:
    """``body`` with two RunStates, each with its own Database and broadcaster on one
    PostgreSQL database, as two processes have them."""

    async def main() -> None:
        await asyncio.to_thread(upgrade, url)
        dbs = [Database(url), Database(url)]
        broadcasters = [Broadcaster(store=events.make_store(db)) for db in dbs]
        try:
            async with dbs[0].write() as session:
                await chats_repo.insert(session, chat_id=CHAT, title=None, owner=None)
            first, second = (
                RunStates(db=db, broadcaster=b) for db, b in zip(dbs, broadcasters, strict=True)
            )
            await body(first, second, dbs[0])
        finally:
            for broadcaster in broadcasters:
                await broadcaster.aclose()
            for db in dbs:
                await db.dispose()

    asyncio.run(main())


def test_across_processes_a_start_or_a_cancel_wins_and_a_seal_or_a_cancel(
    postgres: PostgresDatabases,
) -> None:
    async def body(here: RunStates, there: RunStates, db: Database) -> None:
        for attempt in range(20):
            run_id = f"q{attempt}"
            status = await _race_start_and_cancel(db, here, there, run_id, cancel_first=False)
            sealed, landed = await asyncio.gather(
                here.seal(run_id), there.request_cancel(run_id, "cancelled")
            )
            assert not (sealed and landed)  # never both: a 202 for a run that completes
            assert sealed or landed or status == "cancelled"
        seqs = [event["seq"] for event in await events.list_since(db, chat_id=CHAT, since=0)]
        assert seqs == list(range(1, len(seqs) + 1))  # a declined event took no number

    two_processes(body, postgres.fresh())
