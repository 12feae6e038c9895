"""Measurement 3, in process: the broadcaster alone, without HTTP, WebSockets or a 2nd process.

``chatflow.broadcaster.Broadcaster`` with the service's own store (``events.make_store`` on a
real SQLite file), an in-memory store, or ``OneHopStore`` (the same rows through the plain
sqlite3 module), and 100 subscriptions read by tasks, so the fan-out capacity itself is
visible.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import sqlite3
import time
import uuid
from array import array
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.fanout import MARKER
from benchmarks.stats import latency_summary


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
    "sqlite-one-hop" (``OneHopStore``: the same rows through plain sqlite3) or "memory";
    ``publishers`` concurrent publishers as fast as they can, or one paced at ``rate``/s."""
    return asyncio.run(_broadcaster_run(store_kind, db_dir, subscribers, events, publishers, rate))
