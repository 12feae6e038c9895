"""Two API processes and two workers on one PostgreSQL database, one Redis and one files dir,
each a real process: what one process guarantees holds across them, and a process killed with
SIGKILL costs nothing but the run it was executing.

The cluster has a Redis server of its own (``redis-server`` on a free loopback port), so that
restarting it mid-run disturbs no other test.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.cluster import Cluster, Member
from tests.postgres import PostgresDatabases, services_required
from tests.support import (
    POSTAL_ROWS,
    create_chat,
    free_ports,
    seed_workflow,
    upload,
    write_xlsx,
)

pytestmark = pytest.mark.slow

API = "/api/v1/chat/workflows"
ENDINGS = {"workflow_completed", "workflow_failed", "workflow_cancelled"}
STALLED_S = 3.0
# The same step on the long run's input, written as csv (a second) instead of xlsx row by row
# (seconds): for a run that must complete rather than be interrupted.
QUICK_OUTPUT = "codes.csv"


class PrivateRedis:
    """A redis-server of this module's own, which a test may kill and start again."""

    def __init__(self, home: Path) -> None:
        (self.port,) = free_ports(1)
        self.home = home
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.home),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1),
            ):
                return
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture(scope="module")
def cluster(
    postgres: PostgresDatabases, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    if shutil.which("redis-server") is None:
        reason = "redis-server is not installed (Debian's redis-server package)"
        if services_required():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    home = tmp_path_factory.mktemp("cluster")
    redis = PrivateRedis(home)
    redis.start()
    env = {
        "CHATFLOW_DATABASE_URL": postgres.fresh(),
        "CHATFLOW_REDIS_URL": f"redis://127.0.0.1:{redis.port}/0",
        "CHATFLOW_WORKER_CONCURRENCY": "1",  # three chats at once need both workers
        "CHATFLOW_WORKER_HEARTBEAT_S": "0.5",
        "CHATFLOW_WORKER_STALLED_S": str(STALLED_S),
        "CHATFLOW_WORKER_PROCESSES": "1",
        "CHATFLOW_INSPECT_PROCESSES": "1",
        # Writes row by row and can be stopped mid-write: long enough to cancel or kill into.
        "CHATFLOW_XLSX_WRITER": "xlsxwriter",
        "CHATFLOW_SHUTDOWN_GRACE_S": "5",
    }
    cluster = Cluster(home, env)
    cluster.redis = redis  # type: ignore[attr-defined]
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        redis.kill()


class Follower:
    """A WebSocket subscriber in a thread; it collects the chat's events until closed."""

    def __init__(self, url: str) -> None:
        self.events: list[dict[str, Any]] = []
        self.closed = threading.Event()
        self._stack = contextlib.ExitStack()
        self._ws = self._stack.enter_context(connect(url, open_timeout=10, close_timeout=2))
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed, OSError):
            for frame in self._ws:
                self.events.append(json.loads(frame))
        self.closed.set()

    def until(self, check: Any, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not check(self.events):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; got {[e['type'] for e in self.events][-20:]}")
            time.sleep(0.02)

    def close(self) -> None:
        self._stack.close()
        self._thread.join(10)


def _client(member: Member) -> httpx.Client:
    return httpx.Client(base_url=member.url, timeout=120)


def _stored(client: httpx.Client, chat_id: str) -> list[dict[str, Any]]:
    response = client.get(f"{API}/{chat_id}/events", params={"since": 0, "limit": 10_000})
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def _settled(client: httpx.Client, chat_id: str) -> list[dict[str, Any]]:
    """The chat's stored events once its run has ended and said so in the transcript."""
    deadline = time.monotonic() + 120
    while (stored := _stored(client, chat_id))[-1]["type"] != "message_added":
        assert time.monotonic() < deadline, [e["type"] for e in stored[-5:]]
        time.sleep(0.1)
    return stored


def _executed_by(cluster: Cluster, run_id: str) -> Member:
    for worker in cluster.workers:
        if f"run {run_id} started" in worker.log.read_text(errors="replace"):
            return worker
    raise AssertionError(f"no worker says it started {run_id}:\n{cluster.logs()}")


def _long_run(
    client: httpx.Client, tmp_path: Path, follow: list[Member]
) -> tuple[str, str, Path, list[Follower]]:
    """A chat whose one run takes seconds (400,000 rows written row by row), followed from
    the start on each of ``follow``: (chat id, run id, its input, the followers)."""
    chat = create_chat(client)
    big = tmp_path / "big.csv"
    pl.DataFrame({"code": [f"{i:07d}" for i in range(400_000)]}).write_csv(big)
    upload(client, chat, big)
    followers = [Follower(f"{member.ws_url}/chat/{chat}?since=0") for member in follow]
    response = client.post(f"{API}/{chat}/execute", json=seed_workflow(columns=["code"]))
    assert response.status_code == 202, response.text
    return chat, response.json()["data"]["run_id"], big, followers


def test_subscribers_on_both_apis_see_the_same_events_for_three_chats_at_once(
    cluster: Cluster, tmp_path: Path
) -> None:
    a, b = cluster.apis
    source = write_xlsx(tmp_path / "postal.xlsx", POSTAL_ROWS)
    with _client(a) as on_a, _client(b) as on_b:
        chats = [create_chat(on_a if n % 2 else on_b) for n in range(3)]
        followers = {
            (chat, member.name): Follower(f"{member.ws_url}/chat/{chat}?since=0")
            for chat in chats
            for member in (a, b)
        }

        def work(chat: str) -> list[str]:
            upload(on_a, chat, source)
            upload(on_b, chat, source)
            run_ids = []
            for n in range(4):  # through A and B in turn; they queue behind each other
                client = on_a if n % 2 else on_b
                response = client.post(f"{API}/{chat}/execute", json=seed_workflow())
                assert response.status_code == 202, response.text
                run_ids.append(response.json()["data"]["run_id"])
            client.post(f"{API}/{chat}/messages", json={"text": "done"})
            return run_ids

        with ThreadPoolExecutor(3) as pool:
            runs = dict(zip(chats, pool.map(work, chats), strict=True))
        for chat in chats:
            last = _last_run_ended(on_a, chat, runs[chat])
            stored = _stored(on_b, chat)
            assert stored == _stored(on_a, chat)
            assert [e["seq"] for e in stored] == list(range(1, len(stored) + 1))
            for member in (a, b):
                follower = followers[(chat, member.name)]
                follower.until(lambda events: len(events) >= len(stored))  # noqa: B023
                assert follower.events == stored, member.name  # same seq, order, no gap or twice
            assert last["status"] == "completed"
        for follower in followers.values():
            follower.close()
    every_run = [run_id for chat in chats for run_id in runs[chat]]
    workers = {_executed_by(cluster, run_id).name for run_id in every_run}
    assert workers == {"worker1", "worker2"}


def _last_run_ended(client: httpx.Client, chat: str, run_ids: list[str]) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while True:
        views = [client.get(f"{API}/{chat}/runs/{run_id}").json()["data"] for run_id in run_ids]
        if all(view["status"] not in ("queued", "running") for view in views):
            return dict(views[-1])
        assert time.monotonic() < deadline, [view["status"] for view in views]
        time.sleep(0.2)


def test_one_chats_runs_keep_their_order_when_submitted_through_both_apis(
    cluster: Cluster, tmp_path: Path
) -> None:
    a, b = cluster.apis
    with _client(a) as on_a, _client(b) as on_b:
        chat = create_chat(on_a)
        upload(on_a, chat, write_xlsx(tmp_path / "postal.xlsx", POSTAL_ROWS))
        submitted = []
        for n in range(8):
            client = on_b if n % 2 else on_a
            response = client.post(f"{API}/{chat}/execute", json=seed_workflow())
            submitted.append(response.json()["data"]["run_id"])
        _last_run_ended(on_b, chat, submitted)
        stored = _stored(on_a, chat)
    lifecycle = [
        (event["type"], event["run_id"])
        for event in stored
        if event["type"] == "workflow_started" or event["type"] in ENDINGS
    ]
    # One at a time, in submission order: each run starts after the previous one ended.
    expected = [
        pair
        for run_id in submitted
        for pair in (("workflow_started", run_id), ("workflow_completed", run_id))
    ]
    assert lifecycle == expected


def test_a_cancel_through_one_api_stops_a_run_on_a_worker_within_a_second(
    cluster: Cluster, tmp_path: Path
) -> None:
    a, b = cluster.apis
    with _client(a) as on_a, _client(b) as on_b:
        chat, run_id, _, (follower,) = _long_run(on_a, tmp_path, [a])
        # Writing its output: the longest stretch, checked for a cancel row by row.
        follower.until(
            lambda events: any(e["type"] == "progress" and e["progress"] > 75 for e in events)
        )
        asked = time.monotonic()
        response = on_b.post(f"{API}/{chat}/runs/{run_id}/cancel")
        assert response.status_code == 202, response.text
        follower.until(lambda events: events[-1]["type"] in ENDINGS, timeout_s=10)
        took = time.monotonic() - asked
        follower.close()
        assert follower.events[-1]["type"] == "workflow_cancelled"
        assert took < 1.0, f"the cancel took {took:.2f} s to stop the run"
        run = on_b.get(f"{API}/{chat}/runs/{run_id}").json()["data"]
        assert (run["status"], run["outputs"]) == ("cancelled", [])
        files = on_a.get(f"{API}/{chat}/files").json()["data"]
        assert [f["filename"] for f in files] == ["big.csv"]
    on_disk = list((cluster.files_dir / chat).iterdir())
    assert len(on_disk) == 1, on_disk  # the upload; nothing partial or temporary is left


def test_a_worker_killed_mid_run_leaves_the_run_interrupted_and_the_chat_working(
    cluster: Cluster, tmp_path: Path
) -> None:
    a, _ = cluster.apis
    with _client(a) as on_a:
        chat, run_id, big, (follower,) = _long_run(on_a, tmp_path, [a])
        follower.until(lambda events: any(e["type"] == "progress" for e in events))
        victim = _executed_by(cluster, run_id)
        cluster.kill(victim)
        follower.until(lambda events: events[-1]["type"] in ENDINGS, timeout_s=STALLED_S + 20)
        ended = follower.events[-1]
        assert (ended["type"], ended["error"]["code"]) == ("workflow_failed", "interrupted")
        run = on_a.get(f"{API}/{chat}/runs/{run_id}").json()["data"]
        assert (run["status"], run["outputs"]) == ("interrupted", [])
        # The input is intact, and the chat's next run completes on the other worker.
        download = on_a.get(f"{API}/{chat}/files/big.csv")
        assert (
            hashlib.sha256(download.content).digest() == hashlib.sha256(big.read_bytes()).digest()
        )
        again = on_a.post(
            f"{API}/{chat}/execute",
            params={"wait": "true", "timeout": 120},
            json=seed_workflow(columns=["code"], output=QUICK_OUTPUT),
        )
        assert again.status_code == 200, again.text
        assert again.json()["data"]["status"] == "completed"
        follower.close()
    cluster.restart(victim)


def test_a_worker_stopped_with_sigterm_ends_its_run_and_leaves_the_queue_to_the_other(
    cluster: Cluster, tmp_path: Path
) -> None:
    a, _ = cluster.apis
    first, second = cluster.workers
    assert cluster.terminate(second) == 0  # idle: it stops at once
    # No grace: a stop raises the running run's cancel flag at once (the default gives it
    # CHATFLOW_SHUTDOWN_GRACE_S to finish first).
    assert cluster.terminate(first) == 0
    cluster.restart(first, CHATFLOW_SHUTDOWN_GRACE_S="0")
    with _client(a) as on_a:
        chat, long_id, _, (follower,) = _long_run(on_a, tmp_path, [a])
        queued = on_a.post(
            f"{API}/{chat}/execute", json=seed_workflow(columns=["code"], output=QUICK_OUTPUT)
        )
        queued_id = queued.json()["data"]["run_id"]
        follower.until(lambda events: any(e["type"] == "progress" for e in events))
        cluster.restart(second)
        assert cluster.terminate(first) == 0  # a clean exit, within its (zero) grace
        ended = _last_run_ended(on_a, chat, [long_id, queued_id])
        follower.close()
        long_run = on_a.get(f"{API}/{chat}/runs/{long_id}").json()["data"]
    assert (long_run["status"], long_run["error"]["code"]) == ("interrupted", "interrupted")
    # The run queued behind it stayed in the queue and ran on the worker still up.
    assert ended["status"] == "completed"
    assert _executed_by(cluster, queued_id).name == "worker2"
    cluster.restart(first)


def test_subscribers_of_a_killed_api_resume_on_the_other_with_since(
    cluster: Cluster, tmp_path: Path
) -> None:
    a, b = cluster.apis
    with _client(b) as on_b:
        chat, _, _, (first,) = _long_run(on_b, tmp_path, [a])
        first.until(lambda events: any(e["type"] == "progress" for e in events))
        cluster.kill(a)
        first.closed.wait(10)
        seen = list(first.events)
        resumed = Follower(f"{b.ws_url}/chat/{chat}?since={seen[-1]['seq']}")
        stored = _settled(on_b, chat)
        resumed.until(lambda events: len(seen) + len(events) >= len(stored))
        resumed.close()
    assert seen + resumed.events == stored  # nothing lost, nothing twice
    assert stored[-2]["type"] == "workflow_completed"
    cluster.restart(a)


def test_redis_restarted_mid_run_loses_and_repeats_nothing(
    cluster: Cluster, tmp_path: Path
) -> None:
    a, b = cluster.apis
    redis: PrivateRedis = cluster.redis  # type: ignore[attr-defined]
    with _client(a) as on_a:
        chat, _, _, followers = _long_run(on_a, tmp_path, [a, b])
        followers[0].until(lambda events: any(e["type"] == "progress" for e in events))
        redis.kill()
        time.sleep(1.0)  # events are stored meanwhile; nobody hears of them through Redis
        redis.start()
        stored = _settled(on_a, chat)
        for follower in followers:
            follower.until(lambda events: len(events) >= len(stored))  # noqa: B023
            assert follower.events == stored
            follower.close()
    assert stored[-2]["type"] == "workflow_completed"
