"""Measurement 3 in process: the broadcaster with the service's SQLite event store, no sockets.

``Broadcaster`` with ``services.events.make_store`` on a real SQLite file and N subscriptions,
each read by a task: the fan-out capacity of the service's own code, without HTTP, WebSockets or
a second process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from array import array
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.fanout import publish_all
from benchmarks.options import Options
from benchmarks.results import Results, latency

log = logging.getLogger("benchmarks")


async def _fan_out(
    db_dir: Path, subscribers: int, events: int, publishers: int, rate: float | None
) -> dict[str, Any]:
    from chatflow.broadcaster import Broadcaster
    from chatflow.db.engine import Database
    from chatflow.db.migrate import upgrade
    from chatflow.repositories import chats as chats_repo
    from chatflow.services.events import make_store

    url = f"sqlite+aiosqlite:///{db_dir / f'broadcaster-{uuid.uuid4().hex}.db'}"
    await asyncio.to_thread(upgrade, url)
    db = Database(url)
    chat_id = str(uuid.uuid4())
    async with db.write() as session:
        await chats_repo.insert(session, chat_id=chat_id, title="bench", owner=None)
    broadcaster = Broadcaster(store=make_store(db), queue_size=1000)
    latencies = array("d")
    received = [0] * subscribers

    async def consume(index: int, subscription: Any) -> None:
        while received[index] < events:
            event = await subscription.get()
            latencies.append(time.perf_counter() - event["t0"])
            received[index] += 1

    async def one(i: int) -> None:
        now = datetime.now().isoformat()
        body = {"type": "bench", "chat_id": chat_id, "timestamp": now, "message": f"{i}"}
        await broadcaster.publish(chat_id, {**body, "t0": time.perf_counter()})

    try:
        async with contextlib.AsyncExitStack() as stack:
            subs = [
                await stack.enter_async_context(broadcaster.subscribe(chat_id))
                for _ in range(subscribers)
            ]
            consumers = [asyncio.create_task(consume(i, s)) for i, s in enumerate(subs)]
            started = time.perf_counter()
            await publish_all(one, events, publishers, rate)
            await asyncio.wait_for(asyncio.gather(*consumers), 120)
            elapsed = time.perf_counter() - started
        await broadcaster.aclose()
    finally:
        await db.dispose()
    return {"delivered_per_s": sum(received) / elapsed, "latency": latency(latencies)}


def run_broadcaster(res: Results, work: Path, opts: Options) -> None:
    n = opts.subscribers
    for rep in range(opts.reps):
        log.info("broadcaster round %d/%d", rep + 1, opts.reps)
        fast = asyncio.run(_fan_out(work, n, opts.bc_events, opts.publishers, None))
        paced = asyncio.run(_fan_out(work, n, opts.bc_paced_events, 1, opts.paced_rate))
        res.add(
            "bc_delivered",
            f"in-process broadcaster, {n} subs: delivered/s",
            "ev/s",
            fast["delivered_per_s"],
        )
        res.add(
            "bc_paced_p99",
            f"in-process, paced {opts.paced_rate:.0f}/s to {n} subs: p99",
            "ms",
            paced["latency"]["p99_ms"],
        )
