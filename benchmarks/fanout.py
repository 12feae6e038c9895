"""Measurement 3: WebSocket fan-out of one chat's events, and the broadcaster on its own.

Over the wire: subscribers live in a separate client process (``python -m benchmarks.fanout``)
holding N WebSockets to one chat of a ``benchmarks.publish_server`` (the real app plus a
bench-only route), which publishes N events itself, on its own loop, through
``services.events.emit`` and the real broadcaster and event store: as fast as its concurrent
publishers can, or paced.  Latency is the event's own ``timestamp`` (taken by the server just
before it stores and fans the event out) to the moment the client read the frame, on one
machine clock.  Every subscriber checks that ``seq`` goes 1, 2, 3, ... with no gap, duplicate
or reordering.  With ``batch`` the subscribers ask for ``?batch=true`` (several queued events
in one JSON-array frame); events are counted one by one either way.

In-process: ``chatflow.broadcaster.Broadcaster`` with a store backed by the real events
repository on a real SQLite file, and 100 subscriptions read by tasks, so the fan-out capacity
itself is visible without HTTP, WebSocket framing or a second process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import selectors
import sqlite3
import subprocess
import sys
import time
import uuid
from array import array
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import uvloop

from benchmarks.stats import latency_summary

REPO_ROOT = Path(__file__).resolve().parent.parent
MARKER = "bench-fanout "
COMPRESSION: str | None = os.environ.get("BENCH_WS_COMPRESSION", "deflate") or None
CLIENT_TIMEOUT_S = 600.0
READY_TIMEOUT_S = 60.0


# --- the client process -----------------------------------------------------------------------


class _Tally:
    def __init__(self, subscribers: int) -> None:
        self.latencies = array("d")
        self.counts = [0] * subscribers
        self.order_errors = [0] * subscribers
        self.reconnects = [0] * subscribers
        self.frames = [0] * subscribers
        self.first_recv = float("inf")
        self.last_recv = 0.0
        self._stamps: dict[int, float] = {}

    def stamp(self, seq: int, timestamp: str) -> float:
        value = self._stamps.get(seq)
        if value is None:
            value = self._stamps[seq] = datetime.fromisoformat(timestamp).timestamp()
        return value


class _Reader:
    """One subscriber's bookkeeping: seq order, latency and counts, frame by frame."""

    def __init__(self, index: int, expect: int, tally: _Tally, ready: asyncio.Event) -> None:
        self.index = index
        self.expect = expect
        self.tally = tally
        self.ready = ready
        self.last_seq = 0

    @property
    def finished(self) -> bool:
        return self.tally.counts[self.index] >= self.expect

    def frame(self, text: str | bytes, received: float) -> None:
        tally, index = self.tally, self.index
        data = json.loads(text)
        # A batched frame (?batch=true) is a JSON array of events, oldest first.
        if isinstance(data, list) or "seq" in data:
            tally.frames[index] += 1
        for event in data if isinstance(data, list) else (data,):
            seq = event.get("seq")
            if seq is None:  # the pong: the server has subscribed us
                self.ready.set()
                continue
            if seq != self.last_seq + 1:
                tally.order_errors[index] += 1
            if seq <= self.last_seq:
                continue
            self.last_seq = seq
            if str(event.get("message", "")).startswith(MARKER):
                tally.latencies.append(received - tally.stamp(seq, event["timestamp"]))
                tally.counts[index] += 1
                tally.first_recv = min(tally.first_recv, received)
                tally.last_recv = max(tally.last_recv, received)


async def _subscriber(url: str, reader: _Reader) -> None:
    """A ``websockets`` asyncio client (what a Python application would use)."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    sep = "&" if "?" in url else "?"
    while not reader.finished:
        try:
            async with connect(
                f"{url}{sep}since={reader.last_seq}",
                max_size=None,
                open_timeout=60,
                ping_interval=None,
                compression=COMPRESSION,
            ) as ws:
                await ws.send('{"type": "ping"}')
                async for frame in ws:
                    reader.frame(frame, time.time())
                    if reader.finished:
                        break
        except ConnectionClosed as exc:
            if exc.rcvd is None or exc.rcvd.code not in (1013, 1001):
                raise
            # Fell behind (1013): catch up with ?since=last_seq.
            reader.tally.reconnects[reader.index] += 1


async def _client_main(url: str, subscribers: int, expect: int, timeout_s: float) -> dict[str, Any]:
    tally = _Tally(subscribers)
    readies = [asyncio.Event() for _ in range(subscribers)]
    tasks = [
        asyncio.create_task(_subscriber(url, _Reader(i, expect, tally, readies[i])))
        for i in range(subscribers)
    ]
    failed: list[str] = []
    timed_out = False
    cpu_ready = 0.0
    try:
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), READY_TIMEOUT_S)
        sys.stdout.write("READY\n")
        sys.stdout.flush()
        cpu_ready = time.process_time()
        finished, pending = await asyncio.wait(tasks, timeout=timeout_s)
        timed_out = bool(pending)
        failed = [repr(t.exception()) for t in finished if t.exception() is not None][:5]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "subscribers": subscribers,
        "expected_per_subscriber": expect,
        "received": sum(tally.counts),
        "min_per_subscriber": min(tally.counts),
        "order_errors": sum(tally.order_errors),
        "reconnects": sum(tally.reconnects),
        "frames": sum(tally.frames),
        "first_recv": tally.first_recv,
        "last_recv": tally.last_recv,
        "latency": latency_summary(tally.latencies),
        "timed_out": timed_out,
        "errors": failed,
        "client_cpu_s": time.process_time() - cpu_ready,
    }


def client_entry(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fanout")
    parser.add_argument("--url", required=True, help="ws://.../api/v1/chat/workflows/ID/ws")
    parser.add_argument("--subscribers", type=int, required=True)
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=CLIENT_TIMEOUT_S)
    args = parser.parse_args(argv)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        result = runner.run(_client_main(args.url, args.subscribers, args.expect, args.timeout))
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


# --- the publisher (the server, told by this process) -------------------------------------------


def _control(base_url: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """A call to one of the publish server's bench-only routes."""
    with httpx.Client(base_url=base_url, timeout=None) as client:
        response = client.post(path, json=body)
    if response.status_code != 200:
        raise RuntimeError(f"POST {path} -> {response.status_code}: {response.text}")
    return dict(response.json())


def _read_line(proc: subprocess.Popen[str], timeout_s: float) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout_s):
            raise TimeoutError("the subscriber process did not answer in time")
    return proc.stdout.readline()


def over_websockets(
    *,
    base_url: str,
    ws_url: str,
    server_pid: int,
    chat_id: str,
    subscribers: int,
    events: int,
    publishers: int,
    rate: float | None,
    batch: bool,
    log_path: Path,
) -> dict[str, Any]:
    """One fan-out measurement over the wire; the client process is always ended.

    ``base_url`` must be a ``benchmarks.publish_server``: it publishes the events itself."""
    url = f"{ws_url}/api/v1/chat/workflows/{chat_id}/ws" + ("?batch=true" if batch else "")
    command = [
        sys.executable,
        "-m",
        "benchmarks.fanout",
        "--url",
        url,
        "--subscribers",
        str(subscribers),
        "--expect",
        str(events),
    ]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            text=True,
            cwd=REPO_ROOT,
        )
        try:
            line = _read_line(proc, READY_TIMEOUT_S + 10)
            if line.strip() != "READY":
                raise RuntimeError(f"subscriber process failed to start: {line!r} (see {log_path})")
            server = psutil.Process(server_pid)
            _control(base_url, "/bench/gc")
            cpu_before = sum(server.cpu_times()[:2])
            published = _control(
                base_url,
                "/bench/publish",
                {"chat_id": chat_id, "count": events, "publishers": publishers, "rate": rate},
            )
            result = json.loads(_read_line(proc, CLIENT_TIMEOUT_S + 30))
            result["server_cpu_s"] = sum(server.cpu_times()[:2]) - cpu_before
            result["server_gc"] = _control(base_url, "/bench/gc")
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
            if proc.stdout is not None:
                proc.stdout.close()
    expected = subscribers * events
    started, finished = published["started"], published["finished"]
    span = max(result["last_recv"] - started, 1e-9)
    result.update(
        batch=batch,
        publishers=publishers if rate is None else 0,
        rate=rate,
        publish_seconds=finished - started,
        publish_rate=events / max(finished - started, 1e-9),
        delivered_per_s=result["received"] / span,
        delivery_seconds=span,
        events_per_frame=result["received"] / max(result["frames"], 1),
        lost=expected - result["received"],
        complete=result["received"] == expected
        and result["order_errors"] == 0
        and not result["timed_out"],
    )
    return result


# --- the broadcaster on its own -----------------------------------------------------------------


async def _broadcaster_run(
    store_kind: str,
    db_dir: Path,
    subscribers: int,
    events: int,
    publishers: int,
    rate: float | None,
) -> dict[str, Any]:
    from chatflow.broadcaster import Broadcaster, Event
    from chatflow.db.engine import Database
    from chatflow.db.migrate import upgrade
    from chatflow.repositories import chats as chats_repo
    from chatflow.services.events import make_store

    db_file = db_dir / f"broadcaster-{uuid.uuid4().hex}.db"
    url = f"sqlite+aiosqlite:///{db_file}"
    await asyncio.to_thread(upgrade, url)
    db = Database(url)
    chat_id = str(uuid.uuid4())
    one_hop: OneHopStore | None = None
    try:
        async with db.write() as session:
            await chats_repo.insert(session, chat_id=chat_id, title="bench", owner=None)

        next_seq = itertools.count(1)

        async def memory_store(topic: str, bodies: list[Event]) -> list[Event]:
            return [{**body, "seq": next(next_seq)} for body in bodies]

        store: Callable[[str, list[Event]], Awaitable[list[Event]]]
        if store_kind == "sqlite":
            store = make_store(db)  # the service's own event store
        elif store_kind == "sqlite-one-hop":
            one_hop = OneHopStore(db_file)
            store = one_hop.store
        else:
            store = memory_store
        broadcaster = Broadcaster(store=store, queue_size=1000)
        latencies = array("d")
        counts = [0] * subscribers
        order_errors = [0] * subscribers
        last_recv = [0.0]

        async def consume(index: int, subscription: Any) -> None:
            last = 0
            while counts[index] < events:
                event = await subscription.get()
                now = time.perf_counter()
                latencies.append(now - event["t0"])
                if event["seq"] != last + 1:
                    order_errors[index] += 1
                last = event["seq"]
                counts[index] += 1
                last_recv[0] = max(last_recv[0], now)

        counter = itertools.count()

        async def publish_one(i: int) -> None:
            await broadcaster.publish(
                chat_id,
                {
                    "type": "bench",
                    "chat_id": chat_id,
                    "timestamp": datetime.now().isoformat(),
                    "message": f"{MARKER}{i}",
                    "t0": time.perf_counter(),
                },
            )

        async def publish() -> None:
            while (i := next(counter)) < events:
                await publish_one(i)

        async def publish_paced(rate: float) -> None:
            loop = asyncio.get_running_loop()
            origin = loop.time()
            tasks = []
            for i in range(events):
                delay = origin + i / rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(publish_one(i)))
            await asyncio.gather(*tasks)

        closed = 0
        async with contextlib.AsyncExitStack() as stack:
            subs = [
                await stack.enter_async_context(broadcaster.subscribe(chat_id))
                for _ in range(subscribers)
            ]
            consumers = [asyncio.create_task(consume(i, s)) for i, s in enumerate(subs)]
            started = time.perf_counter()
            if rate is None:
                await asyncio.gather(*(publish() for _ in range(publishers)))
            else:
                await publish_paced(rate)
            published = time.perf_counter()
            done, pending = await asyncio.wait(consumers, timeout=120)
            for task in pending:
                task.cancel()
            await asyncio.gather(*consumers, return_exceptions=True)
            closed = sum(1 for s in subs if s.close_reason == "overflow")
        await broadcaster.aclose()
    finally:
        if one_hop is not None:
            one_hop.close()
        await db.dispose()
    received = sum(counts)
    span = max(last_recv[0] - started, 1e-9)
    return {
        "store": store_kind,
        "subscribers": subscribers,
        "events": events,
        "publishers": publishers if rate is None else 0,
        "rate": rate,
        "received": received,
        "lost": subscribers * events - received,
        "order_errors": sum(order_errors),
        "overflow_closed": closed,
        "publish_seconds": published - started,
        "publish_rate": events / (published - started),
        "delivered_per_s": received / span,
        "latency": latency_summary(latencies),
        "complete": received == subscribers * events and not any(order_errors) and not closed,
    }


class OneHopStore:
    """A reference store, not the service's: the same rows as the service's store (bump the
    chat's ``last_seq``, insert the events) in one thread hop per batch, but written with the
    plain sqlite3 module instead of SQLAlchemy Core, to show what SQLAlchemy costs on the
    latency path."""

    def __init__(self, db_file: Path) -> None:
        self._conn = sqlite3.connect(db_file, isolation_level=None, check_same_thread=False)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=30000"):
            self._conn.execute(f"PRAGMA {pragma}")
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="one-hop-store")

    def _write(self, topic: str, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute(
                "UPDATE chats SET last_seq = last_seq + ? WHERE id = ? RETURNING last_seq",
                (len(bodies), topic),
            ).fetchone()
            first = row[0] - len(bodies) + 1
            stored = [{**body, "seq": first + i} for i, body in enumerate(bodies)]
            now = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
            conn.executemany(
                "INSERT INTO events (chat_id, seq, type, run_id, body, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(topic, e["seq"], e["type"], e.get("run_id"), json.dumps(e), now) for e in stored],
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return stored

    async def store(self, topic: str, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._write, topic, bodies)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._conn.close()


def broadcaster_alone(
    store_kind: str,
    db_dir: Path,
    *,
    subscribers: int = 100,
    events: int = 10_000,
    publishers: int = 16,
    rate: float | None = None,
) -> dict[str, Any]:
    """The broadcaster in this process; ``store_kind``: "sqlite" (the real repository),
    "sqlite-one-hop" (the prototype above) or "memory";
    ``publishers`` concurrent publishers as fast as they can, or one paced at ``rate``/s."""
    return asyncio.run(_broadcaster_run(store_kind, db_dir, subscribers, events, publishers, rate))


if __name__ == "__main__":
    sys.exit(client_entry())
