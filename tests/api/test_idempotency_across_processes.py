"""Two API processes on one PostgreSQL database: the same Idempotency-Key sent to both at once
does the work once, and every request gets the same answer (never a 500)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import httpx

from tests.postgres import PostgresDatabases
from tests.support import (
    POSTAL_ROWS,
    LiveServer,
    create_chat,
    make_settings,
    run_server,
    seed_workflow,
    write_xlsx,
)

API = "/api/v1/chat/workflows"
ROUNDS = 4
PER_PROCESS = 2  # requests per process and round, all with the round's key


@contextlib.contextmanager
def two_processes(tmp_path: Path, database_url: str) -> Iterator[tuple[LiveServer, LiveServer]]:
    """Two apps (each its own runtime, pool and in-process locks) on one database and files dir."""
    settings = make_settings(tmp_path / "data", database_url=database_url)
    with run_server(settings) as first, run_server(settings) as second:
        yield first, second


def at_once(
    clients: list[httpx.Client], send: Callable[[httpx.Client], httpx.Response]
) -> list[httpx.Response]:
    """``send`` through each client in turn, PER_PROCESS times each, all released together."""
    targets = [client for client in clients for _ in range(PER_PROCESS)]
    barrier = threading.Barrier(len(targets))

    def one(client: httpx.Client) -> httpx.Response:
        barrier.wait()
        return send(client)

    with ThreadPoolExecutor(len(targets)) as pool:
        answers = list(pool.map(one, targets))
    for answer in answers:
        assert answer.status_code in (200, 201, 202), answer.text
    assert len({answer.text for answer in answers}) == 1  # one answer, replayed to the rest
    return answers


def upload(chat_id: str, source: bytes, key: str, client: httpx.Client) -> httpx.Response:
    files = {"file": ("data.xlsx", source)}
    headers = {"Idempotency-Key": key}
    return client.post(f"{API}/{chat_id}/upload", files=files, headers=headers)


def execute(chat_id: str, key: str, client: httpx.Client) -> httpx.Response:
    headers = {"Idempotency-Key": key}
    return client.post(f"{API}/{chat_id}/execute", json=seed_workflow(), headers=headers)


def test_one_key_on_two_processes_at_once_uploads_and_runs_once(
    postgres: PostgresDatabases, tmp_path: Path
) -> None:
    source = write_xlsx(tmp_path / "data.xlsx", POSTAL_ROWS).read_bytes()
    with (
        two_processes(tmp_path, postgres.fresh()) as servers,
        httpx.Client(base_url=servers[0].url, timeout=60) as a,
        httpx.Client(base_url=servers[1].url, timeout=60) as b,
    ):
        chat_id = create_chat(a)
        for turn in range(ROUNDS):
            at_once([a, b], partial(upload, chat_id, source, f"upload-{turn}"))
        files = a.get(f"{API}/{chat_id}/files").json()["data"]
        assert sorted((f["filename"], f["version"]) for f in files) == [
            ("data.xlsx", version) for version in range(1, ROUNDS + 1)
        ]
        events = b.get(f"{API}/{chat_id}/events", params={"since": 0}).json()["data"]
        assert [e["type"] for e in events].count("file_uploaded") == ROUNDS
        run_ids = set()
        for turn in range(ROUNDS):
            answers = at_once([b, a], partial(execute, chat_id, f"run-{turn}"))
            run_ids.add(answers[0].json()["data"]["run_id"])
        runs = a.get(f"{API}/{chat_id}/runs").json()["data"]
        assert sorted(run["run_id"] for run in runs) == sorted(run_ids)
        assert len(run_ids) == ROUNDS
