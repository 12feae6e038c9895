"""Every write of the process waits its turn in one queue: write() sessions and run_write."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from sqlalchemy import Connection, text

from chatflow.db.engine import Database


def test_a_session_is_not_overtaken_by_writes_queued_after_it(tmp_path: Path) -> None:
    async def scenario() -> list[str]:
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'q.db'}")
        await db.run_write(lambda c: c.exec_driver_sql("CREATE TABLE log (who TEXT)"))
        go = threading.Event()

        def first(conn: Connection) -> None:  # holds the lock until the others are queued
            go.wait(10)
            conn.exec_driver_sql("INSERT INTO log VALUES ('first')")

        async def session() -> None:
            async with db.write() as s:
                await s.execute(text("INSERT INTO log VALUES ('session')"))

        try:
            holding = asyncio.create_task(db.run_write(first))
            await asyncio.sleep(0.2)
            queued = asyncio.create_task(session())
            await asyncio.sleep(0.2)  # the session asked before the next run_write
            last = asyncio.create_task(
                db.run_write(lambda c: c.exec_driver_sql("INSERT INTO log VALUES ('last')"))
            )
            await asyncio.sleep(0.2)
            go.set()
            await asyncio.gather(holding, queued, last)
            async with db.read() as s:
                return [
                    row[0] for row in await s.execute(text("SELECT who FROM log ORDER BY rowid"))
                ]
        finally:
            await db.dispose()

    # Racing for SQLite's lock instead, 'last' ran the moment 'first' committed, while the
    # session slept in the busy handler.
    assert asyncio.run(scenario()) == ["first", "session", "last"]


def test_run_write_inside_a_session_fails_instead_of_waiting_forever(tmp_path: Path) -> None:
    async def scenario() -> None:
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'q.db'}")
        try:
            async with db.write():
                with pytest.raises(RuntimeError, match="wait for itself"):
                    await db.run_write(lambda c: None)
            await db.run_write(lambda c: None)  # and the queue moves on afterwards
        finally:
            await db.dispose()

    asyncio.run(scenario())
