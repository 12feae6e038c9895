"""A migrated SQLite file per test (copied from one migration per session) and a way to use it;
``database_url`` for tests that run on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from chatflow.db.engine import Database
from chatflow.db.migrate import upgrade
from chatflow.db.models import Chat, StoredFile
from chatflow.repositories import chats as chats_repo
from tests.postgres import PostgresDatabases

T = TypeVar("T")
Scenario = Callable[[Database], Awaitable[T]]
OnDb = Callable[[Scenario[Any]], Any]


@pytest.fixture(scope="session")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty database at the migrations' head, made once."""
    path = tmp_path_factory.mktemp("migrated") / "chatflow.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    with sqlite3.connect(path) as raw:  # everything in the main file, so one copy is whole
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database of each kind (PostgreSQL: a fresh one of this session's)."""
    if request.param == "postgresql":
        databases: PostgresDatabases = request.getfixturevalue("postgres")
        url = databases.migrated()
        yield url
        databases.drop_later(url)
        return
    url = f"sqlite+aiosqlite:///{tmp_path / 'chatflow.db'}"
    upgrade(url)
    yield url


@pytest.fixture
def on_db(migrated: Path, tmp_path: Path) -> Callable[[Scenario[T]], T]:
    """Run an async scenario against a fresh copy of the migrated database."""
    path = tmp_path / "chatflow.db"
    shutil.copyfile(migrated, path)

    def run(scenario: Scenario[T]) -> T:
        async def main() -> T:
            db = Database(f"sqlite+aiosqlite:///{path}")
            try:
                return await scenario(db)
            finally:
                await db.dispose()

        return asyncio.run(main())

    return run


async def add_chat(db: Database, chat_id: str, owner: str | None = None) -> Chat:
    async with db.write() as session:
        return await chats_repo.insert(session, chat_id=chat_id, title=None, owner=owner)


def stored_file(chat_id: str, name: str, version: int, storage: str, **extra: Any) -> StoredFile:
    """A files row with plausible defaults (an uploaded csv)."""
    values: dict[str, Any] = {
        "chat_id": chat_id,
        "name": name,
        "version": version,
        "storage_name": storage,
        "kind": "csv",
        "media_type": "text/csv",
        "size": 1,
        "sha256": "0" * 64,
        "source": "upload",
    }
    values.update(extra)
    return StoredFile(**values)
