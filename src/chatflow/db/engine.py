"""The async engine and session helpers, with SQLite tuned for one writer and many readers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

# Connection option that turns a transaction's BEGIN into BEGIN IMMEDIATE on SQLite.
_IMMEDIATE = "chatflow_begin_immediate"


def _install_sqlite_hooks(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin (see _on_begin).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        # WAL: readers never block the writer and the writer never blocks readers.
        cursor.execute("PRAGMA journal_mode=WAL")
        # NORMAL is durable across application crashes in WAL mode; only power loss can drop
        # the last commits, and it avoids an fsync per commit.
        cursor.execute("PRAGMA synchronous=NORMAL")
        # Wait for another process's write lock instead of failing with 'database is locked'.
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        # SQLite ignores declared foreign keys (and ON DELETE CASCADE) unless asked.
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A deferred transaction that later writes can hit SQLITE_BUSY without the busy
        # handler being consulted; taking the write lock up front lets busy_timeout apply.
        if conn.get_execution_options().get(_IMMEDIATE):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


class Database:
    """Owns the engine; hands out read sessions and write sessions (BEGIN IMMEDIATE on SQLite)."""

    def __init__(self, url: str, *, busy_timeout_ms: int = 30_000, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.engine = create_async_engine(url, echo=echo)
        if self.is_sqlite:
            _install_sqlite_hooks(self.engine, busy_timeout_ms)
        write_engine = self.engine.execution_options(**{_IMMEDIATE: True})
        self._read = async_sessionmaker(self.engine, expire_on_commit=False)
        self._write = async_sessionmaker(write_engine, expire_on_commit=False)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for queries; never commits."""
        async with self._read() as session:
            yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A session whose transaction commits on success and rolls back on error."""
        async with self._write() as session, session.begin():
            yield session

    async def ping(self) -> bool:
        """True when a trivial query succeeds."""
        try:
            async with self.engine.connect() as conn:
                await conn.exec_driver_sql("SELECT 1")
            return True
        except Exception:
            return False

    async def dispose(self) -> None:
        await self.engine.dispose()
