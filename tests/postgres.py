"""PostgreSQL for the tests: one server (127.0.0.1:5432, user postgres, trust auth), a database
of this test session's own for each test that asks, all dropped when the session ends.

Unreachable, the tests that need it skip with the reason; with CHATFLOW_REQUIRE_SERVICES=1
(``.ci/run``) they fail instead, so CI cannot pass by skipping them.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import queue
import socket
import threading
import uuid

import pytest

HOST = os.environ.get("CHATFLOW_TEST_PG_HOST", "127.0.0.1")
PORT = int(os.environ.get("CHATFLOW_TEST_PG_PORT", "5432"))
USER = os.environ.get("CHATFLOW_TEST_PG_USER", "postgres")


def services_required() -> bool:
    return os.environ.get("CHATFLOW_REQUIRE_SERVICES", "") not in ("", "0")


def unavailable(reason: str) -> None:
    """Skip the test for a missing service, or fail it where services are required."""
    if services_required():
        pytest.fail(f"{reason} (CHATFLOW_REQUIRE_SERVICES is set)", pytrace=False)
    pytest.skip(reason)


async def _admin(statement: str) -> None:
    import asyncpg  # a main dependency, but a laptop install may predate it

    conn = await asyncpg.connect(host=HOST, port=PORT, user=USER, database="postgres", timeout=5)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def _run_admin(statement: str) -> None:
    asyncio.run(_admin(statement))


class PostgresDatabases:
    """Creates empty databases named after this session; ``drop_all`` removes every one.

    A DROP DATABASE takes about 0.1 s, and seconds on a busy server: a database its user is
    done with (``drop_later``) is dropped by a thread meanwhile, while the tests go on, rather
    than all at the end of the session, when the process has nothing else to do.
    """

    def __init__(self) -> None:
        self.prefix = f"chatflow_test_{uuid.uuid4().hex[:12]}"
        self._numbers = itertools.count(1)
        self._created: list[str] = []
        self._template: str | None = None  # a database at the migrations' head, made once
        self._unused: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._dropper: threading.Thread | None = None

    def url(self, name: str) -> str:
        return f"postgresql+asyncpg://{USER}@{HOST}:{PORT}/{name}"

    def fresh(self) -> str:
        """The URL of a new, empty database."""
        name = f"{self.prefix}_{next(self._numbers)}"
        _run_admin(f'CREATE DATABASE "{name}"')
        self._created.append(name)
        return self.url(name)

    def migrated(self) -> str:
        """The URL of a new database at the migrations' head and empty: a copy of one migrated
        once per session (a copy takes about a third of the time of migrating)."""
        if self._template is None:
            from chatflow.db.migrate import upgrade

            template = self.fresh()
            upgrade(template)  # its engine is disposed: nobody is connected, as a copy needs
            self._template = template.rsplit("/", 1)[1]
        name = f"{self.prefix}_{next(self._numbers)}"
        _run_admin(f'CREATE DATABASE "{name}" TEMPLATE "{self._template}"')
        self._created.append(name)
        return self.url(name)

    def drop_later(self, url: str) -> None:
        """Drop the database of ``url`` in the background: nothing uses it any more."""
        name = url.rsplit("/", 1)[1]
        self._created.remove(name)
        if self._dropper is None:
            self._dropper = threading.Thread(target=self._drop_unused, name="dropdb", daemon=True)
            self._dropper.start()
        self._unused.put(name)

    def _drop_unused(self) -> None:
        while (name := self._unused.get()) is not None:
            try:
                _drop(name)
            except Exception:
                self._created.append(name)  # drop_all tries again, and says why if it fails

    def drop_all(self) -> None:
        if self._dropper is not None:
            self._unused.put(None)
            self._dropper.join()
            self._dropper = None
        for name in self._created:
            _drop(name)
        self._created.clear()


def _drop(name: str) -> None:
    # FORCE: a server a failed test left behind may still hold connections.
    _run_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def connect_or_reason() -> PostgresDatabases | str:
    """A session's databases, or why PostgreSQL cannot be used here."""
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        return "asyncpg is not installed (a main dependency: reinstall chatflow)"
    databases = PostgresDatabases()
    try:
        _run_admin("SELECT 1")
    except Exception as error:
        return f"PostgreSQL unreachable at {HOST}:{PORT} as {USER}: {error!r}"
    return databases


class CuttableProxy:
    """A loopback TCP proxy in front of PostgreSQL (or ``upstream``, e.g. Redis) that a test can
    cut (listener closed, every link dropped: new connections are refused) and open again on the
    same port."""

    def __init__(self, upstream: tuple[str, int] = (HOST, PORT)) -> None:
        self._upstream = upstream
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = int(probe.getsockname()[1])
        probe.close()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()

    def url(self, database_url: str) -> str:
        """``database_url`` (a server on HOST:PORT) through this proxy."""
        return database_url.replace(f"@{HOST}:{PORT}/", f"@127.0.0.1:{self.port}/")

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            writer.close()
            return
        self._links |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _open(self) -> None:
        self._server = await asyncio.start_server(
            self._link, "127.0.0.1", self.port, reuse_address=True
        )

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._links):
            writer.transport.abort()
        self._links.clear()

    def open(self) -> None:
        asyncio.run_coroutine_threadsafe(self._open(), self._loop).result(10)

    def cut(self) -> None:
        asyncio.run_coroutine_threadsafe(self._cut(), self._loop).result(10)

    def close(self) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
