"""The database: migrations only, SQLite pragmas, and concurrent writers without 'locked'."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import httpx
from alembic.script import ScriptDirectory
from sqlalchemy import text

from chatflow.db.engine import Database
from chatflow.db.migrate import alembic_config, upgrade
from tests.support import create_chat, make_settings, run_server


def test_schema_comes_from_migrations_and_pragmas_are_set(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    upgrade(url)
    upgrade(url)  # idempotent

    async def check() -> tuple[str, int, int]:
        db = Database(url)
        try:
            async with db.read() as session:
                mode = (await session.execute(text("PRAGMA journal_mode"))).scalar_one()
                fk = (await session.execute(text("PRAGMA foreign_keys"))).scalar_one()
                busy = (await session.execute(text("PRAGMA busy_timeout"))).scalar_one()
            return str(mode), int(fk), int(busy)
        finally:
            await db.dispose()

    assert asyncio.run(check()) == ("wal", 1, 30_000)
    with sqlite3.connect(tmp_path / "x.db") as raw:
        tables = {
            row[0] for row in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
        version = raw.execute("SELECT version_num FROM alembic_version").fetchone()[0]
    assert {
        "chats",
        "files",
        "runs",
        "run_steps",
        "events",
        "messages",
        "saved_workflows",
    } <= tables
    assert version == ScriptDirectory.from_config(alembic_config(url)).get_current_head()


HOLD_S = 1.5


def test_concurrent_writes_never_fail_with_database_locked(tmp_path: Path) -> None:
    with run_server(make_settings(tmp_path / "data")) as server:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            chat_id = create_chat(client)
        errors: list[str] = []
        writing = threading.Barrier(7)  # six writers and this thread

        def writer(n: int) -> None:
            with httpx.Client(base_url=server.url, timeout=60) as http:
                writing.wait(30)
                for i in range(15):
                    response = http.post(
                        f"/api/v1/chat/workflows/{chat_id}/messages", json={"text": f"{n}-{i}"}
                    )
                    if response.status_code != 201:
                        errors.append(response.text)

        # Another process holds the write lock for a while; requests wait instead of failing.
        holder = sqlite3.connect(server.settings.resolved_data_dir / "chatflow.db", timeout=30)
        holder.execute("BEGIN IMMEDIATE")
        threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        writing.wait(30)
        # Not a synchronisation: how long the lock is held is the contention under test.
        time.sleep(HOLD_S)
        holder.rollback()
        holder.close()
        for thread in threads:
            thread.join(120)
        assert errors == []
        with httpx.Client(base_url=server.url) as client:
            events = client.get(
                f"/api/v1/chat/workflows/{chat_id}/events", params={"limit": 1000}
            ).json()["data"]
        assert [e["seq"] for e in events] == list(range(1, 91))
