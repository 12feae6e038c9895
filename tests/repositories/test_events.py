"""repositories/events.py against real SQLite: sequence numbers taken with their rows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Connection

from chatflow.db.engine import Database
from chatflow.repositories import events as events_repo
from tests.repositories.conftest import OnDb, add_chat


def _publish(chat_id: str, types: list[str]) -> Callable[[Connection], list[int]]:
    def write(conn: Connection) -> list[int]:
        first = events_repo.take_seqs(conn, chat_id=chat_id, count=len(types))
        stored: list[dict[str, Any]] = [{"type": t, "seq": first + i} for i, t in enumerate(types)]
        events_repo.insert_events(conn, chat_id=chat_id, stored=stored)
        return [int(e["seq"]) for e in stored]

    return write


def test_each_chat_numbers_its_events_from_one_without_gaps(on_db: OnDb) -> None:
    async def scenario(db: Database) -> None:
        await add_chat(db, "c1")
        await add_chat(db, "c2")
        assert await db.run_write(_publish("c1", ["a", "b"])) == [1, 2]
        assert await db.run_write(_publish("c2", ["x"])) == [1]
        assert await db.run_write(_publish("c1", ["c"])) == [3]
        async with db.read() as session:
            everything = await events_repo.list_since(session, chat_id="c1", since=0)
            later = await events_repo.list_since(session, chat_id="c1", since=1, limit=1)
        assert [(e["seq"], e["type"]) for e in everything] == [(1, "a"), (2, "b"), (3, "c")]
        assert later == [{"type": "b", "seq": 2}]

    on_db(scenario)


def test_a_missing_chat_takes_no_numbers_and_a_failed_batch_keeps_none(on_db: OnDb) -> None:
    async def scenario(db: Database) -> None:
        await add_chat(db, "c1")
        with pytest.raises(events_repo.ChatGone):
            await db.run_write(_publish("nope", ["a"]))

        def take_then_fail(conn: Connection) -> None:
            events_repo.take_seqs(conn, chat_id="c1", count=5)
            raise RuntimeError("before the insert")

        with pytest.raises(RuntimeError):
            await db.run_write(take_then_fail)
        assert await db.run_write(_publish("c1", ["a"])) == [1]  # the 5 went back

    on_db(scenario)
