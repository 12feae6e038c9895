"""Two API processes on one PostgreSQL database, one files dir and one Redis: a chat's
WebSocket subscribers on either see the same events (same seq, same order, no gap, no
duplicate), whichever process stored them, through a cut of the Redis connection too."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection

from tests.postgres import CuttableProxy, PostgresDatabases
from tests.redis_service import RedisServer
from tests.support import (
    POSTAL_ROWS,
    LiveServer,
    create_chat,
    make_settings,
    run_server,
    seed_workflow,
    subscribe,
    upload,
    write_xlsx,
)

API = "/api/v1/chat/workflows"
TIMEOUT_S = 60.0


@contextlib.contextmanager
def two_processes(
    tmp_path: Path, database_url: str, redis_urls: tuple[str, str], prefix: str
) -> Iterator[tuple[LiveServer, LiveServer]]:
    """Two `chatflow serve` processes (each also executes runs, from the job queue) on one
    database, one files dir and one Redis (or a proxy in front of it)."""
    data_dir = tmp_path / "data"  # one files dir for both
    settings = [
        make_settings(data_dir, database_url=database_url, redis_url=url, redis_prefix=prefix)
        for url in redis_urls
    ]
    with run_server(settings[0]) as first, run_server(settings[1]) as second:
        yield first, second


def _stored(client: httpx.Client, chat_id: str) -> list[dict[str, Any]]:
    response = client.get(f"{API}/{chat_id}/events", params={"since": 0, "limit": 10_000})
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def _read_to(ws: ClientConnection, last_seq: int) -> list[dict[str, Any]]:
    """Events from ``ws`` until the one numbered ``last_seq`` (a later one fails the test)."""
    received: list[dict[str, Any]] = []
    while not received or received[-1]["seq"] < last_seq:
        received.append(json.loads(ws.recv(timeout=TIMEOUT_S)))
    assert received[-1]["seq"] == last_seq
    return received


def _say(client: httpx.Client, chat_id: str, text: str) -> int:
    said = client.post(f"{API}/{chat_id}/messages", json={"text": text})
    assert said.status_code == 201, said.text
    return int(client.get(f"{API}/{chat_id}").json()["data"]["last_seq"])


def _work_on(chat_id: str, clients: list[httpx.Client], source: Path, turn: int) -> None:
    """Uploads, runs and a message, each through the process whose turn it is."""
    for step in range(4):
        client = clients[(turn + step) % 2]
        if step % 2 == 0:
            uploaded = upload(client, chat_id, source, name=f"data-{step}.xlsx")
            assert uploaded.status_code == 201, uploaded.text
        ran = client.post(f"{API}/{chat_id}/execute", params={"wait": "true"}, json=seed_workflow())
        assert ran.status_code == 200, ran.text
        assert ran.json()["data"]["status"] == "completed"
    _say(clients[turn % 2], chat_id, "done")


def test_subscribers_on_both_processes_see_every_chat_identically(
    postgres: PostgresDatabases, redis_server: RedisServer, tmp_path: Path
) -> None:
    source = write_xlsx(tmp_path / "data.xlsx", POSTAL_ROWS)
    url = redis_server.url()
    with (
        two_processes(tmp_path, postgres.fresh(), (url, url), redis_server.prefix) as servers,
        httpx.Client(base_url=servers[0].url, timeout=TIMEOUT_S) as a,
        httpx.Client(base_url=servers[1].url, timeout=TIMEOUT_S) as b,
        contextlib.ExitStack() as sockets,
    ):
        chats = [create_chat(a if i % 2 else b, f"chat {i}") for i in range(3)]
        # Live from now on (no ?since=): what they see came through the broadcasters.
        followers = {
            chat_id: [
                sockets.enter_context(subscribe(f"{live.ws_url}/chat/{chat_id}"))
                for live in servers
            ]
            for chat_id in chats
        }
        with ThreadPoolExecutor(3) as pool:
            list(pool.map(_work_on, chats, [[a, b]] * 3, [source] * 3, range(3)))

        for chat_id in chats:
            stored = _stored(a, chat_id)
            assert _stored(b, chat_id) == stored  # ?since= reads the database on either
            last = stored[-1]["seq"]
            assert [e["seq"] for e in stored] == list(range(1, last + 1))
            on_a, on_b = (_read_to(ws, last) for ws in followers[chat_id])
            assert on_a == on_b
            assert on_a == stored[-len(on_a) :]
            assert [e["seq"] for e in on_a] == list(range(on_a[0]["seq"], last + 1))
            types = [e["type"] for e in on_a]
            assert types.count("file_uploaded") == 2
            assert types.count("workflow_completed") == 4
            assert types[-1] == "message_added"
            # A subscriber that joins late on the other process replays the same events.
            with subscribe(f"{servers[1].ws_url}/chat/{chat_id}?since=0") as late:
                assert _read_to(late, last) == stored


@pytest.fixture
def redis_proxy(redis_server: RedisServer) -> Iterator[CuttableProxy]:
    cuttable = CuttableProxy(upstream=(redis_server.host, redis_server.port))
    cuttable.open()
    try:
        yield cuttable
    finally:
        cuttable.close()


def test_a_cut_redis_connection_loses_and_duplicates_nothing(
    postgres: PostgresDatabases,
    redis_server: RedisServer,
    redis_proxy: CuttableProxy,
    tmp_path: Path,
) -> None:
    urls = (redis_server.url(), redis_server.url(port=redis_proxy.port))
    with (
        two_processes(tmp_path, postgres.fresh(), urls, redis_server.prefix) as (first, second),
        httpx.Client(base_url=first.url, timeout=TIMEOUT_S) as a,
        httpx.Client(base_url=second.url, timeout=TIMEOUT_S) as b,
    ):
        chat_id = create_chat(a)
        with (
            subscribe(f"{first.ws_url}/chat/{chat_id}") as on_a,
            subscribe(f"{second.ws_url}/chat/{chat_id}") as on_b,
        ):
            last = _say(a, chat_id, "before")
            seen_a, seen_b = _read_to(on_a, last), _read_to(on_b, last)

            # B's subscriber is cut off while A stores: B reads them back when it reconnects,
            # with no newer event to tell it anything was missed.
            redis_proxy.cut()
            for n in range(3):
                last = _say(a, chat_id, f"while B is cut off {n}")
            redis_proxy.open()
            seen_b += _read_to(on_b, last)

            # B stores while cut off: its publisher holds the batches until Redis is back.
            redis_proxy.cut()
            for n in range(2):
                last = _say(b, chat_id, f"from B while cut off {n}")
            redis_proxy.open()
            seen_a += _read_to(on_a, last)
            seen_b += _read_to(on_b, last)

            last = _say(b, chat_id, "after")
            seen_a += _read_to(on_a, last)
            seen_b += _read_to(on_b, last)

        stored = _stored(b, chat_id)
        assert seen_a == seen_b == stored[-len(seen_a) :]
        assert [e["seq"] for e in seen_a] == list(range(seen_a[0]["seq"], last + 1))
        texts = [e["entry"]["text"] for e in seen_a if e["type"] == "message_added"]
        assert texts == [
            "before",
            *(f"while B is cut off {n}" for n in range(3)),
            *(f"from B while cut off {n}" for n in range(2)),
            "after",
        ]
