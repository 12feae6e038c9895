"""Shared fixtures: a real uvicorn server on a free loopback port, with its own data dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from chatflow.settings import Settings
from tests.support import LiveServer, run_server


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    """Settings for a test server; tests pass these explicitly, never through the environment."""
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": 0,
        # The seed's second WebSocket port is off unless a test asks for a (free) one: parallel
        # test servers must never all try to bind 5051.
        "ws_port": 0,
        "data_dir": data_dir,
        "step_threads": 2,
        "log_level": "warning",
        "shutdown_grace_s": 2.0,
        # Most test servers never run a step; those that do start their worker on first use.
        "prestart_workers": False,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    with run_server(make_settings(tmp_path / "data")) as live:
        yield live


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http
