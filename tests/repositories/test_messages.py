"""repositories/messages.py against real SQLite: inserted in the caller's transaction, paged."""

from __future__ import annotations

from functools import partial

import pytest
from sqlalchemy import Connection

from chatflow.db.engine import Database
from chatflow.repositories import messages as messages_repo
from tests.repositories.conftest import OnDb, add_chat


def test_messages_are_paged_by_id_per_chat(on_db: OnDb) -> None:
    async def scenario(db: Database) -> None:
        await add_chat(db, "c1")
        await add_chat(db, "c2")
        ids = []
        for n in range(4):
            insert = partial(
                messages_repo.insert_sync, chat_id="c1", role="user", text=f"m{n}", data=None
            )
            message_id, created_at = await db.run_write(insert)
            assert created_at.tzinfo is not None
            ids.append(message_id)
        other = partial(
            messages_repo.insert_sync, chat_id="c2", role="system", text="x", data={"k": 1}
        )
        await db.run_write(other)
        async with db.read() as session:
            first = await messages_repo.list_page(session, chat_id="c1", after_id=0, limit=3)
            rest = await messages_repo.list_page(
                session, chat_id="c1", after_id=first[-1].id, limit=3
            )
            theirs = await messages_repo.list_page(session, chat_id="c2", after_id=0, limit=10)
        assert [m.text for m in first] == ["m0", "m1", "m2"]
        assert [m.id for m in first + rest] == ids
        assert [(m.role, m.text, m.data) for m in theirs] == [("system", "x", {"k": 1})]

    on_db(scenario)


def test_a_failed_transaction_keeps_no_message(on_db: OnDb) -> None:
    async def scenario(db: Database) -> None:
        await add_chat(db, "c1")

        def insert_then_fail(conn: Connection) -> None:
            messages_repo.insert_sync(conn, chat_id="c1", role="user", text="lost", data=None)
            raise RuntimeError("after the insert")

        with pytest.raises(RuntimeError):
            await db.run_write(insert_then_fail)
        async with db.read() as session:
            assert await messages_repo.list_page(session, chat_id="c1", after_id=0, limit=10) == []

    on_db(scenario)
