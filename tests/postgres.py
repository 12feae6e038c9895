"""PostgreSQL for the tests: one server (127.0.0.1:5432, user postgres, trust auth), a database
of this test session's own for each test that asks, all dropped when the session ends.

Unreachable, the tests that need it skip with the reason; with CHATFLOW_REQUIRE_SERVICES=1
(``.ci/run``) they fail instead, so CI cannot pass by skipping them.
"""

from __future__ import annotations

import asyncio
import itertools
import os
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
    """Creates empty databases named after this session; ``drop_all`` removes every one."""

    def __init__(self) -> None:
        self.prefix = f"chatflow_test_{uuid.uuid4().hex[:12]}"
        self._numbers = itertools.count(1)
        self._created: list[str] = []

    def url(self, name: str) -> str:
        return f"postgresql+asyncpg://{USER}@{HOST}:{PORT}/{name}"

    def fresh(self) -> str:
        """The URL of a new, empty database."""
        name = f"{self.prefix}_{next(self._numbers)}"
        _run_admin(f'CREATE DATABASE "{name}"')
        self._created.append(name)
        return self.url(name)

    def drop_all(self) -> None:
        for name in self._created:
            # FORCE: a server a failed test left behind may still hold connections.
            _run_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._created.clear()


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
