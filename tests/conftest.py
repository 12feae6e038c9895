"""Shared fixtures: a real uvicorn server on a free loopback port, with its own data dir.

``server`` (and ``client`` on it) is one server per test module: tests on it stay independent
by each making its own chat.  A test that kills, reconfigures or fills its server, or counts
what the whole server holds, is marked ``own_server`` and gets a fresh one.

A module marked ``both_databases`` runs each of its tests twice: on a server with the default
SQLite file (``[sqlite]``) and on one with a fresh PostgreSQL database (``[postgresql]``).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests import redis_service
from tests.postgres import PostgresDatabases, connect_or_reason, unavailable
from tests.redis_service import RedisServer

if TYPE_CHECKING:
    import httpx

    from chatflow.settings import Settings
    from tests.support import LiveServer

# tests.support (and with it the whole app) is imported by the fixtures that use it, not here:
# under pytest-xdist the controlling process loads this file too, before it starts the workers,
# and runs no test.

# The processes tests start (chatflow serve, workers, clusters) import this checkout's code too,
# as the tests do (pyproject: pythonpath), even where .venv is an editable install of another
# checkout, such as a git worktree sharing it.
_SRC = str(Path(__file__).resolve().parents[1] / "src")
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [_SRC, os.environ.get("PYTHONPATH")]))


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresDatabases]:
    """This session's PostgreSQL databases (skips, or fails, where there is no server)."""
    found = connect_or_reason()
    if isinstance(found, str):
        unavailable(found)
        return
    try:
        yield found
    finally:
        found.drop_all()


@pytest.fixture(scope="session")
def redis_server() -> RedisServer:
    """This session's Redis (skips, or fails, where there is no server)."""
    found = redis_service.connect_or_reason()
    if isinstance(found, str):
        unavailable(found)
        raise AssertionError("unreachable")  # unavailable() skips or fails
    return found


@pytest.fixture(scope="module")
def database_kind(request: pytest.FixtureRequest) -> str:
    """ "sqlite" unless the module is marked ``both_databases`` (see pytest_generate_tests)."""
    return str(getattr(request, "param", "sqlite"))


def database_settings(request: pytest.FixtureRequest, kind: str) -> dict[str, object]:
    """Settings overrides for a server on ``kind``: none (one process on SQLite), or the
    scale-out configuration: a fresh PostgreSQL database (runs on its job queue) and Redis.
    The database is already at the migrations' head (a template's copy), as after a first
    start: tests/e2e/test_postgres_serve.py starts on an empty one."""
    if kind == "sqlite":
        return {}
    databases: PostgresDatabases = request.getfixturevalue("postgres")
    redis: RedisServer = request.getfixturevalue("redis_server")
    return {
        "database_url": databases.migrated(),
        "redis_url": redis.url(),
        "redis_prefix": redis.prefix,
    }


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "database_kind" in metafunc.fixturenames and metafunc.definition.get_closest_marker(
        "both_databases"
    ):
        metafunc.parametrize(
            "database_kind", ["sqlite", "postgresql"], indirect=True, scope="module"
        )


@pytest.fixture(scope="module")
def module_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, database_kind: str
) -> Iterator[LiveServer]:
    """The server the tests of one module share."""
    from tests.support import make_settings, run_server

    data_dir = tmp_path_factory.mktemp("module-server") / "data"
    settings = make_settings(data_dir, **database_settings(request, database_kind))
    with run_server(settings) as live:
        yield live
    _done_with_database(request, settings)


@pytest.fixture
def server(
    request: pytest.FixtureRequest, tmp_path: Path, database_kind: str
) -> Iterator[LiveServer]:
    from tests.support import make_settings, run_server

    if request.node.get_closest_marker("own_server") is None:
        yield request.getfixturevalue("module_server")
        return
    settings = make_settings(tmp_path / "data", **database_settings(request, database_kind))
    with run_server(settings) as live:
        yield live
    _done_with_database(request, settings)


def _done_with_database(request: pytest.FixtureRequest, settings: Settings) -> None:
    """A stopped server's PostgreSQL database goes (in the background); SQLite stays in its
    temporary folder."""
    if settings.database_url is not None:
        databases: PostgresDatabases = request.getfixturevalue("postgres")
        databases.drop_later(settings.database_url)


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    import httpx

    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http


# Directories whose every file drives real processes or a browser: seconds a file, few tests.
_HEAVY_DIRS = ("browser", "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Long files first: files holding slow tests, then those of ``_HEAVY_DIRS``, then the
    rest in their order.  With the files spread over processes (``make test``), a long one
    started last would leave the other processes idle while it finishes.  (pytest-xdist keeps
    this order only with ``--no-loadscope-reorder``, in pyproject's addopts; by default it
    sends files with more tests first, whatever their length.)"""
    _unique_node_ids(items)
    slow_files = {item.path for item in items if item.get_closest_marker("slow") is not None}
    tests_dir = Path(__file__).parent

    def tier(item: pytest.Item) -> int:
        if item.path in slow_files:
            return 0
        return 1 if item.path.relative_to(tests_dir).parts[0] in _HEAVY_DIRS else 2

    items.sort(key=tier)


def _unique_node_ids(items: list[pytest.Item]) -> None:
    """Give items that share a node id one made from their own name.

    Schemathesis (4.x on pytest 9) gives every operation of ``schema.parametrize()`` the id of
    the test function, though each item has its own name (``test_openapi[GET /api/v1/health]``);
    pytest-xdist schedules by node id, and would run one operation of the 21 and drop the rest.
    """
    seen = Counter(item.nodeid for item in items)
    for item in items:
        if seen[item.nodeid] > 1 and item.parent is not None and hasattr(item, "_id"):
            item._id = item.parent.id.child(item.name)
    repeated = [nodeid for nodeid, n in Counter(item.nodeid for item in items).items() if n > 1]
    assert not repeated, f"tests with the same node id (xdist would run one): {repeated}"
