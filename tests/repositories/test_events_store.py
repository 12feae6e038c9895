"""The service's event store: one writer-thread transaction per batch on a real SQLite file."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection

from chatflow.broadcaster import Broadcaster
from chatflow.db.engine import Database
from chatflow.db.migrate import upgrade
from chatflow.repositories import chats as chats_repo
from chatflow.repositories import messages as messages_repo
from chatflow.repositories.events import ChatGone
from chatflow.services import events


async def _database(tmp_path: Path) -> Database:
    url = f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"
    await asyncio.to_thread(upgrade, url)
    return Database(url)


async def _chat(db: Database, chat_id: str) -> None:
    async with db.write() as session:
        await chats_repo.insert(session, chat_id=chat_id, title=None, owner=None)


def _writer_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith("chatflow-db-writer"))


def test_batches_get_per_chat_sequence_numbers_and_are_stored_as_sent(tmp_path: Path) -> None:
    async def scenario() -> None:
        db = await _database(tmp_path)
        try:
            await _chat(db, "a")
            await _chat(db, "b")
            store = events.make_store(db)
            first = await store("a", [{"type": "t", "n": 1}, {"type": "t", "n": 2}])
            other = await store("b", [{"type": "t", "n": 1}])
            second = await store("a", [{"type": "t", "n": 3, "run_id": "r"}])
            assert [e["seq"] for e in first + second] == [1, 2, 3]
            assert [e["seq"] for e in other] == [1]
            for event in first + other + second:
                # The wire text is the stored event, encoded once.
                assert isinstance(event, events.StoredEvent)
                assert json.loads(event.text) == event
            stored = await events.list_since(db, chat_id="a", since=0)
            assert stored == [dict(e) for e in first + second]
            assert await events.list_since(db, chat_id="a", since=2) == [dict(second[0])]
        finally:
            await db.dispose()

    asyncio.run(scenario())


def test_a_deleted_chat_raises_chat_gone_and_stores_nothing(tmp_path: Path) -> None:
    async def scenario() -> None:
        db = await _database(tmp_path)
        try:
            await _chat(db, "a")
            store = events.make_store(db)
            await store("a", [{"type": "t"}])
            async with db.write() as session:
                assert await chats_repo.remove(session, chat_id="a")
            with pytest.raises(ChatGone):
                await store("a", [{"type": "t"}])
            with pytest.raises(ChatGone):
                await store("never-existed", [{"type": "t"}])
            assert await events.list_since(db, chat_id="a", since=0) == []
        finally:
            await db.dispose()

    asyncio.run(scenario())


def test_a_row_and_the_event_announcing_it_commit_together_or_not_at_all(tmp_path: Path) -> None:
    async def scenario() -> None:
        db = await _database(tmp_path)
        try:
            await _chat(db, "a")
            broadcaster = Broadcaster(store=events.make_store(db))

            def message(text: str, fail: bool = False) -> events.WithRow:
                def write(conn: Connection) -> dict[str, Any]:
                    message_id, _ = messages_repo.insert_sync(
                        conn, chat_id="a", role="user", text=text, data={"k": 1}
                    )
                    if fail:
                        raise RuntimeError("the event cannot be stored")
                    return {"entry": {"id": message_id, "text": text}}

                return write

            first = await events.emit(
                broadcaster,
                chat_id="a",
                type="message_added",
                message="one",
                with_row=message("one"),
            )
            assert first["entry"]["text"] == "one" and first["seq"] == 1
            assert "__with_row__" not in first
            with pytest.raises(RuntimeError, match="cannot be stored"):
                await events.emit(
                    broadcaster,
                    chat_id="a",
                    type="message_added",
                    message="two",
                    with_row=message("two", fail=True),
                )
            # The failed message left no row and no event; the next one takes seq 2.
            async with db.read() as session:
                rows = await messages_repo.list_page(session, chat_id="a", after_id=0, limit=10)
            assert [(row.id, row.text, row.data) for row in rows] == [
                (first["entry"]["id"], "one", {"k": 1})
            ]
            assert await events.list_since(db, chat_id="a", since=0) == [dict(first)]
            third = await events.emit(broadcaster, chat_id="a", type="t", message="three")
            assert third["seq"] == 2
            await broadcaster.aclose()
        finally:
            await db.dispose()

    asyncio.run(scenario())


def test_concurrent_publishes_and_other_writes_keep_order(tmp_path: Path) -> None:
    async def scenario() -> None:
        db = await _database(tmp_path)
        try:
            await _chat(db, "a")
            broadcaster = Broadcaster(store=events.make_store(db))
            received: list[dict[str, Any]] = []
            async with broadcaster.subscribe("a") as subscription:

                async def publish(i: int) -> dict[str, Any]:
                    return await events.emit(
                        broadcaster, chat_id="a", type="t", message=str(i), i=i
                    )

                async def other_writes() -> None:
                    # Writes through the async engine take the same SQLite write lock.
                    for i in range(20):
                        await _chat(db, f"other-{i}")

                results = await asyncio.gather(*(publish(i) for i in range(200)), other_writes())
                while len(received) < 200:
                    received.extend(await subscription.get_many(500))
            published = results[:200]
            # Publishes started in this order are stored and delivered in this order.
            assert [e["i"] for e in published] == list(range(200))
            assert [e["seq"] for e in published] == list(range(1, 201))
            assert received == published
            assert await events.list_since(db, chat_id="a", since=0) == [dict(e) for e in received]
            await broadcaster.aclose()
        finally:
            await db.dispose()

    asyncio.run(scenario())


def test_dispose_ends_the_writer_thread(tmp_path: Path) -> None:
    async def scenario() -> None:
        before = _writer_threads()
        db = await _database(tmp_path)
        await _chat(db, "a")
        await events.make_store(db)("a", [{"type": "t"}])
        assert _writer_threads() == before + 1
        await db.dispose()
        assert _writer_threads() == before
        with pytest.raises(RuntimeError):
            await db.run_write(lambda conn: None)

    asyncio.run(scenario())


def test_an_in_memory_database_is_written_through_its_own_connection() -> None:
    async def scenario() -> None:
        from chatflow.db.models import Base

        before = _writer_threads()
        db = Database("sqlite+aiosqlite:///:memory:")
        try:
            async with db.engine.begin() as conn:
                await conn.run_sync(Base.metadata.create_all)
            await _chat(db, "a")
            stored = await events.make_store(db)("a", [{"type": "t"}, {"type": "t"}])
            assert [e["seq"] for e in stored] == [1, 2]
            assert await events.list_since(db, chat_id="a", since=0) == [dict(e) for e in stored]
            assert _writer_threads() == before  # no writer thread for it
        finally:
            await db.dispose()

    asyncio.run(scenario())


def _noted(text: str) -> dict[str, Any]:
    """An event whose with_row writes a transcript message in the event's transaction."""

    def write(conn: Connection) -> dict[str, Any]:
        messages_repo.insert_sync(conn, chat_id="a", role="system", text=text, data=None)
        return {"message": text}

    return events.event_body(chat_id="a", type="t", message="", with_row=write)


def _broken(conn: Connection) -> dict[str, Any]:
    raise OSError("the disk went away")


def test_events_published_together_are_stored_together_or_not_at_all(tmp_path: Path) -> None:
    async def scenario() -> None:
        db = await _database(tmp_path)
        broadcaster = Broadcaster(store=events.make_store(db))
        try:
            await _chat(db, "a")
            async with broadcaster.subscribe("a") as sub:
                broken = events.event_body(chat_id="a", type="t", message="", with_row=_broken)
                with pytest.raises(OSError):
                    await events.emit_all(broadcaster, chat_id="a", bodies=[_noted("one"), broken])
                # Nothing of the failed pair was stored, not even its first row.
                assert await events.list_since(db, chat_id="a", since=0) == []
                async with db.read() as session:
                    page = await messages_repo.list_page(session, chat_id="a", after_id=0, limit=9)
                assert page == []
                pair = [_noted("two"), _noted("three")]
                stored = await events.emit_all(broadcaster, chat_id="a", bodies=pair)
                assert [(e["seq"], e["message"]) for e in stored] == [(1, "two"), (2, "three")]
                assert [await sub.get() for _ in stored] == stored  # the failed pair never came
        finally:
            await broadcaster.aclose()
            await db.dispose()

    asyncio.run(scenario())
