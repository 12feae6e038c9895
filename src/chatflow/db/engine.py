"""The async engine and session helpers: SQLite tuned for one writer and many readers, or
PostgreSQL through asyncpg with a pool of concurrent connections."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.ext.asyncio import (
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

# Connection option that turns a transaction's BEGIN into BEGIN IMMEDIATE on SQLite.
_IMMEDIATE = "chatflow_begin_immediate"


T = TypeVar("T")

# Set inside ``Database.write``: the writer thread is parked for that session, so a
# ``run_write`` there would never run.
_IN_WRITE: ContextVar[bool] = ContextVar("chatflow_in_write", default=False)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _install_sqlite_hooks(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
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

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A deferred transaction that later writes can hit SQLITE_BUSY without the busy
        # handler being consulted; taking the write lock up front lets busy_timeout apply.
        if conn.get_execution_options().get(_IMMEDIATE):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


def _pool_options(url: str, pool_size: int) -> dict[str, Any]:
    if url.startswith("sqlite"):
        return {}  # SQLAlchemy's own choice per SQLite URL (file or memory)
    # No overflow: the setting is the most connections this process opens; a request past it
    # waits up to pool_timeout, then gets 503 database_busy. pre_ping drops connections a
    # restarted server closed instead of failing the request that draws one.
    return {"pool_size": pool_size, "max_overflow": 0, "pool_timeout": 30, "pool_pre_ping": True}


class Database:
    """Owns the engine; hands out read sessions and write sessions (BEGIN IMMEDIATE on SQLite).

    On PostgreSQL writes run concurrently on ``pool_size`` connections: whatever must be
    serialised (a chat's event ``seq``, a file name's next version) locks the chat's row in its
    own transaction (see repositories/events.py and repositories/chats.py ``lock``).
    """

    def __init__(
        self, url: str, *, busy_timeout_ms: int = 30_000, pool_size: int = 10, echo: bool = False
    ) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.engine = create_async_engine(url, echo=echo, **_pool_options(url, pool_size))
        self._busy_timeout_ms = busy_timeout_ms
        if self.is_sqlite:
            _install_sqlite_hooks(self.engine.sync_engine, busy_timeout_ms)
        write_engine = self.engine.execution_options(**{_IMMEDIATE: True})
        self._write_engine = write_engine
        self._read = async_sessionmaker(self.engine, expire_on_commit=False)
        self._write = async_sessionmaker(write_engine, expire_on_commit=False)
        # A second connection to an in-memory database would be another, empty database.
        database = make_url(url).database or ""
        self._own_writer = (
            self.is_sqlite and database not in ("", ":memory:") and ("mode=memory" not in url)
        )
        self._writer: _SyncWriter | None = None
        self._disposed = False

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for queries; never commits."""
        async with self._read() as session:
            yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A session whose transaction commits on success and rolls back on error.

        On a SQLite file the writer thread (``run_write``) is parked for the whole transaction,
        so every write of this process waits in one FIFO queue.  Racing it for SQLite's lock
        instead, a session lost to back-to-back writer transactions for seconds under load:
        the busy handler sleeps up to 100 ms between tries and rarely lands in a gap.
        """
        release = await self._park_writer()
        token = _IN_WRITE.set(True)
        try:
            async with self._write() as session, session.begin():
                yield session
        finally:
            _IN_WRITE.reset(token)
            release()

    async def _park_writer(self) -> Callable[[], None]:
        if not self._own_writer:
            return lambda: None
        return await self._writer_thread().park()

    def _writer_thread(self) -> _SyncWriter:
        if self._disposed:
            raise RuntimeError("the database is disposed")
        if self._writer is None:
            self._writer = _SyncWriter(self.url, self._busy_timeout_ms)
        return self._writer

    async def ping(self) -> bool:
        """True when a trivial query succeeds."""
        try:
            async with self.engine.connect() as conn:
                await conn.exec_driver_sql("SELECT 1")
            return True
        except Exception:
            return False

    def pool_connections(self) -> tuple[int, int] | None:
        """(in use, idle) connections of the pool behind ``read`` and ``write`` sessions; None
        for a pool that keeps no count (in-memory SQLite). The SQLite writer thread's own
        connection is not in it."""
        pool = self.engine.pool
        checked_out = getattr(pool, "checkedout", None)
        checked_in = getattr(pool, "checkedin", None)
        if checked_out is None or checked_in is None:
            return None
        return int(checked_out()), int(checked_in())

    async def run_write(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in one write transaction that commits if it returns and rolls back if
        it raises.

        On a SQLite file the whole transaction (BEGIN IMMEDIATE, ``fn``'s statements, COMMIT)
        runs on one dedicated writer thread with its own sqlite3 connection: one thread hop per
        transaction instead of one per statement through aiosqlite.  Elsewhere (other
        databases, in-memory SQLite) ``fn`` runs on the async engine's connection.
        """
        if _IN_WRITE.get():
            raise RuntimeError("run_write inside a write() session would wait for itself")
        if not self._own_writer:
            async with self._write_engine.begin() as conn:
                return await conn.run_sync(fn)
        return await self._writer_thread().run(fn)

    async def dispose(self) -> None:
        self._disposed = True  # no writer thread may start after this
        if self._writer is not None:
            await self._writer.close()
        await self.engine.dispose()


class _SyncWriter:
    """One thread owning one synchronous SQLite connection, for whole write transactions."""

    def __init__(self, async_url: str, busy_timeout_ms: int) -> None:
        # The same file through the sqlite3 driver (pysqlite) instead of aiosqlite.
        url = make_url(async_url).set(drivername="sqlite")
        self._engine = create_engine(url)
        # The same pragmas (WAL, synchronous, busy_timeout, foreign_keys) as the async engine.
        _install_sqlite_hooks(self._engine, busy_timeout_ms)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="chatflow-db-writer")
        self._conn: Connection | None = None  # opened, used and closed on the writer thread
        self._closed = False

    def _transaction(self, fn: Callable[[Connection], T]) -> T:
        if self._conn is None:
            self._conn = self._engine.connect().execution_options(**{_IMMEDIATE: True})
        with self._conn.begin():
            return fn(self._conn)

    async def run(self, fn: Callable[[Connection], T]) -> T:
        if self._closed:
            raise RuntimeError("the database writer is closed")
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._transaction, fn)

    async def park(self) -> Callable[[], None]:
        """Occupy the writer thread, in turn with ``run``, until the returned function is
        called (exactly once, whatever happens)."""
        if self._closed:
            raise RuntimeError("the database writer is closed")
        loop = asyncio.get_running_loop()
        parked: asyncio.Future[None] = loop.create_future()
        release = threading.Event()

        def wait_for_release() -> None:
            loop.call_soon_threadsafe(_resolve, parked)
            release.wait()

        self._pool.submit(wait_for_release)
        try:
            await parked
        except BaseException:
            release.set()  # cancelled while queued: the thread passes straight through
            raise
        return release.set

    def _close_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._engine.dispose()

    async def close(self) -> None:
        """Wait for the queued transactions, close the connection, end the thread."""
        if self._closed:
            return
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(self._pool, self._close_connection)
        await asyncio.to_thread(self._pool.shutdown, wait=True)
