"""What is stored comes back the same from SQLite and PostgreSQL: numbers, text, times, JSON."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from chatflow.db.engine import Database
from chatflow.db.migrate import upgrade
from chatflow.repositories import events as events_repo
from chatflow.repositories import files as files_repo
from tests.postgres import PostgresDatabases
from tests.repositories.conftest import add_chat, stored_file

BODY: dict[str, Any] = {
    "type": "note",
    "text": "naïve 🧾 \u00a0tab\tand\nnewline",
    "big": 2**53 + 1,
    "float": 0.1,
    "nested": {"list": [1, "1", None, True, 1.5e-300]},
}


def test_values_round_trip(database_url: str) -> None:
    async def scenario() -> tuple[Any, list[dict[str, Any]]]:
        db = Database(database_url)
        try:
            await add_chat(db, "chat")
            big = stored_file(
                "chat", "big.csv", 0, "s-big", size=3 * 2**30, columns=["a", "ü"], sheets=None
            )
            async with db.write() as session:
                await files_repo.insert_versions(session, chat_id="chat", rows=[big])

            def store(conn: Any) -> None:
                first = events_repo.take_seqs(conn, chat_id="chat", count=1)
                events_repo.insert_events(conn, chat_id="chat", stored=[{**BODY, "seq": first}])

            await db.run_write(store)
            async with db.read() as session:
                row = await files_repo.get(session, chat_id="chat", name="big.csv")
                events = await events_repo.list_since(session, chat_id="chat", since=0)
            return row, events
        finally:
            await db.dispose()

    row, events = asyncio.run(scenario())
    assert row is not None
    assert (row.size, row.version, row.columns, row.sheets) == (3 * 2**30, 1, ["a", "ü"], None)
    assert row.created_at.tzinfo is not None
    assert abs(row.created_at - datetime.now(UTC)) < timedelta(minutes=5)
    assert events == [{**BODY, "seq": 1}]
    assert type(events[0]["big"]) is int and type(events[0]["float"]) is float


def test_times_keep_their_instant(database_url: str) -> None:
    """A time given with another offset is stored as the same instant, read back in UTC."""

    async def scenario() -> datetime:
        db = Database(database_url)
        try:
            chat = await add_chat(db, "chat")
            moment = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=5)))
            async with db.write() as session:
                found = await session.get(type(chat), "chat")
                assert found is not None
                found.created_at = moment
            async with db.read() as session:
                again = await session.get(type(chat), "chat")
                assert again is not None
                return again.created_at
        finally:
            await db.dispose()

    read = asyncio.run(scenario())
    assert read == datetime(2026, 1, 1, 22, 4, 5, 678901, tzinfo=UTC)
    assert read.utcoffset() == timedelta(0)


def _upgrade_with_rows(url: str) -> tuple[int | None, int, str]:
    """Migrate to 0004, store a chat, a file and a run reading it, then migrate to head."""
    upgrade(url, "0004")

    async def fill_then_read() -> tuple[int | None, int, str]:
        db = Database(url)
        try:
            async with db.write() as session:
                await session.execute(
                    text("INSERT INTO chats (id, last_seq, created_at) VALUES ('c', 0, :now)"),
                    {"now": datetime.now(UTC)},
                )
                await session.execute(
                    text(
                        "INSERT INTO files (id, chat_id, name, version, storage_name, kind,"
                        " media_type, size, sha256, source, created_at) VALUES (7, 'c', 'a.csv',"
                        " 1, 's', 'csv', 'text/csv', 2147483647, :sha, 'upload', :now)"
                    ),
                    {"sha": "0" * 64, "now": datetime.now(UTC)},
                )
                await session.execute(
                    text(
                        "INSERT INTO runs (id, chat_id, status, steps, input_file_id, input_name,"
                        " input_version, created_at) VALUES ('r', 'c', 'completed', '[]', 7,"
                        " 'a.csv', 1, :now)"
                    ),
                    {"now": datetime.now(UTC)},
                )
        finally:
            await db.dispose()
        await asyncio.to_thread(upgrade, url)
        db = Database(url)
        try:
            async with db.read() as session:
                input_id = (await session.execute(text("SELECT input_file_id FROM runs"))).scalar()
                size = (await session.execute(text("SELECT size FROM files"))).scalar_one()
                name = (await session.execute(text("SELECT name FROM files"))).scalar_one()
            return input_id, size, name
        finally:
            await db.dispose()

    return asyncio.run(fill_then_read())


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_upgrading_keeps_rows_and_references(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """0005 rebuilds SQLite's files table (batch mode): the runs pointing at it keep pointing."""
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'chatflow.db'}"
    else:
        databases: PostgresDatabases = request.getfixturevalue("postgres")
        url = databases.fresh()
    assert _upgrade_with_rows(url) == (7, 2147483647, "a.csv")
