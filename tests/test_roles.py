"""The roles refuse a configuration they cannot work in, before anything starts; the workers
reach the database the service uses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from chatflow.runs.job_queue import conninfo
from chatflow.settings import Settings

PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/none"


@pytest.mark.parametrize(
    ("role", "database_url", "redis_url", "problem"),
    [
        ("all", None, None, None),
        ("api", None, None, "needs a PostgreSQL CHATFLOW_DATABASE_URL"),
        ("worker", PG, None, "needs CHATFLOW_REDIS_URL"),
        ("api", PG, "redis://127.0.0.1:6379/0", None),
    ],
)
def test_a_role_says_what_it_is_missing(
    role: str, database_url: str | None, redis_url: str | None, problem: str | None
) -> None:
    settings = Settings(role=role, database_url=database_url, redis_url=redis_url)
    found = settings.role_problem()
    assert (found is None) if problem is None else (problem in (found or ""))
    assert settings.uses_job_queue is (database_url is not None)


def test_chatflow_worker_on_sqlite_exits_2_with_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "chatflow", "worker", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 2
    assert "role 'worker' needs a PostgreSQL CHATFLOW_DATABASE_URL" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "chatflow.db").exists()  # refused before anything was made


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (PG, "postgresql://postgres@127.0.0.1:5432/none"),
        (
            "postgresql+asyncpg://u:p%40ss@db.example:6432/app?ssl=require&application_name=cf",
            "postgresql://u:p%40ss@db.example:6432/app?application_name=cf&sslmode=require",
        ),
    ],
)
def test_the_workers_reach_the_database_the_service_uses(url: str, expected: str) -> None:
    """procrastinate's psycopg connection gets the same server, credentials and TLS mode."""
    assert conninfo(url) == expected
