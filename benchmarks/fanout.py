"""Measurement 3 over the wire: one chat's events fanned out to WebSocket subscribers.

The server publishes the events itself, on its own loop, through the real path
(``services.events.emit`` -> broadcaster -> SQLite event store -> each subscriber's queue -> its
WebSocket): ``router`` is the one bench-only route, added by ``serve(..., publish=True)``. The
subscribers live in a separate client process (``python -m benchmarks.fanout``: asyncio +
websockets on uvloop, offering permessage-deflate as a browser does; the server declines it).
Latency is the event's own ``timestamp`` (taken just before it is stored) to the moment the
client read its frame, on one machine clock; every subscriber checks that ``seq`` runs 1, 2, 3...
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import subprocess
import sys
import time
from array import array
from collections.abc import Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from benchmarks.options import Options
from benchmarks.results import Results, latency
from benchmarks.serving import API, REPO, Server, check, create_chat, read_line, serve

log = logging.getLogger("benchmarks")
EVENT_TYPE = "bench_event"
CLIENT_TIMEOUT_S = 600.0

# --- the publisher, inside the server ---------------------------------------------------------


async def publish_all(
    one: Callable[[int], Coroutine[Any, Any, object]],
    count: int,
    publishers: int,
    rate: float | None,
) -> None:
    """``one(0)`` .. ``one(count - 1)``: from ``publishers`` concurrent tasks as fast as each
    await allows, or (with ``rate``) each started on a fixed schedule of ``rate`` per second."""
    if rate is None:
        numbers = iter(range(count))

        async def publisher() -> None:
            for i in numbers:
                await one(i)

        await asyncio.gather(*(publisher() for _ in range(publishers)))
        return
    loop = asyncio.get_running_loop()
    origin = loop.time()
    tasks: list[asyncio.Task[object]] = []
    for i in range(count):
        await asyncio.sleep(max(0.0, origin + i / rate - loop.time()))
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)


class PublishRequest(BaseModel):
    chat_id: str
    count: int = Field(gt=0)
    publishers: int = Field(default=16, gt=0)
    rate: float | None = Field(default=None, gt=0)  # None: as fast as it can


router = APIRouter()


@router.post("/bench/publish")
async def publish(body: PublishRequest, request: Request) -> dict[str, float]:
    """Publish ``count`` events to the chat on this loop; answers once all are stored."""
    from chatflow.services import events

    broadcaster = request.state.runtime.broadcaster

    async def one(i: int) -> None:
        # The same event as the recorded runs published, so frames are the same size.
        message = f"bench-fanout {i}"
        await events.emit(broadcaster, chat_id=body.chat_id, type=EVENT_TYPE, message=message, n=i)

    started = time.time()
    await publish_all(one, body.count, body.publishers, body.rate)
    return {"started": started, "finished": time.time()}


# --- the subscribers, in the client process ------------------------------------------------------


class _Tally:
    def __init__(self) -> None:
        self.latencies = array("d")
        self.received = self.order_errors = self.frames = self.closed = 0
        self.last_recv = 0.0
        self._stamps: dict[int, float] = {}

    def event(self, event: dict[str, Any], received: float) -> None:
        seq = event["seq"]
        stamp = self._stamps.get(seq)
        if stamp is None:  # parsed once, not once per subscriber
            stamp = self._stamps[seq] = datetime.fromisoformat(event["timestamp"]).timestamp()
        self.latencies.append(received - stamp)
        self.received += 1
        self.last_recv = max(self.last_recv, received)


async def _subscriber(url: str, expect: int, tally: _Tally, ready: asyncio.Event) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    last_seq = count = 0
    try:
        async with connect(url, max_size=None, open_timeout=60, ping_interval=None) as ws:
            await ws.send('{"type": "ping"}')
            async for frame in ws:
                received = time.time()
                data = json.loads(frame)
                batch = data if isinstance(data, list) else [data]
                tally.frames += "seq" in batch[0]
                for event in batch:
                    if "seq" not in event:  # the pong: the server has subscribed us
                        ready.set()
                        continue
                    # The first event's seq is whatever the chat had reached.
                    tally.order_errors += bool(last_seq) and event["seq"] != last_seq + 1
                    last_seq = max(last_seq, event["seq"])
                    tally.event(event, received)
                    count += 1
                if count >= expect:
                    return
    except ConnectionClosed:
        tally.closed += 1  # e.g. 1013: it fell too far behind


async def _client(url: str, subscribers: int, expect: int) -> dict[str, Any]:
    tally = _Tally()
    readies = [asyncio.Event() for _ in range(subscribers)]
    tasks = [asyncio.create_task(_subscriber(url, expect, tally, r)) for r in readies]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 60)
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    _, pending = await asyncio.wait(tasks, timeout=CLIENT_TIMEOUT_S)
    for task in pending:
        task.cancel()
    return {
        "received": tally.received,
        "order_errors": tally.order_errors,
        "closed": tally.closed,
        "timed_out": len(pending),
        "events_per_frame": tally.received / max(tally.frames, 1),
        "last_recv": tally.last_recv,
        "latency": latency(tally.latencies),
    }


def client_main(argv: list[str]) -> int:
    import uvloop

    url, subscribers, expect = argv[0], int(argv[1]), int(argv[2])
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        result = runner.run(_client(url, subscribers, expect))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


# --- the measurement -----------------------------------------------------------------------------


def over_websockets(
    server: Server, chat_id: str, events: int, *, subscribers: int, batch: bool, **publish: Any
) -> dict[str, Any]:
    """One fan-out: the subscribers connect, the server publishes; the client's tally."""
    query = "?batch=true" if batch else ""
    url = f"{server.ws_url}{API}/chat/workflows/{chat_id}/ws{query}"
    command = [sys.executable, "-m", "benchmarks.fanout", url, str(subscribers), str(events)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, cwd=REPO, text=True)
    try:
        if (line := read_line(proc, 70)).strip() != "READY":
            raise RuntimeError(f"the subscriber process did not start: {line!r}")
        body = {"chat_id": chat_id, "count": events, **publish}
        with httpx.Client(base_url=server.url, timeout=None) as client:
            published = client.post("/bench/publish", json=body).raise_for_status().json()
        result: dict[str, Any] = json.loads(read_line(proc, CLIENT_TIMEOUT_S + 30))
    finally:
        proc.kill()
        proc.wait(timeout=10)
    span = max(result["last_recv"] - published["started"], 1e-9)
    result["delivered_per_s"] = result["received"] / span
    result["complete"] = result["received"] == subscribers * events and not (
        result["order_errors"] or result["closed"] or result["timed_out"]
    )
    return result


def run_fanout(res: Results, work: Path, opts: Options) -> None:
    """Per round: as fast as the publishers can, then paced; each per-event and batched."""
    n, rate, fast, paced = opts.subscribers, opts.paced_rate, opts.ws_events, opts.ws_paced_events
    cases = [  # key, label, events, rate, batch
        ("ws", f"WS {n} subscribers, frame per event", fast, None, False),
        ("wsb", f"WS {n} subscribers, ?batch=true", fast, None, True),
        ("ws_paced", f"WS {n} subs, paced {rate:.0f}/s, frame per event", paced, rate, False),
        ("wsb_paced", f"WS {n} subs, paced {rate:.0f}/s, ?batch=true", paced, rate, True),
    ]
    with (
        serve(work / "publish-data", work / "publish-server.log", publish=True) as server,
        httpx.Client(base_url=server.url, timeout=None) as client,
    ):
        for rep, (key, label, events, pace, batch) in itertools.product(range(opts.reps), cases):
            log.info("fan-out round %d/%d: %s", rep + 1, opts.reps, label)
            chat = create_chat(client, f"bench: {label}")
            publish = {"rate": pace, "publishers": opts.publishers}
            r = over_websockets(server, chat, events, subscribers=n, batch=batch, **publish)
            check(client.delete(f"{API}/chat/workflows/{chat}"), 204)
            if not r["complete"]:
                res.notes.append(f"{label}: incomplete: {r}")
            if pace is None:
                res.add(f"{key}_delivered", f"{label}: delivered/s", "ev/s", r["delivered_per_s"])
            for q in ("p50", "p99") if pace else ():
                res.add(f"{key}_{q}", f"{label}: latency {q}", "ms", r["latency"][f"{q}_ms"])
    res.ratio(
        "wsb/ws", "WS delivered/s: batched vs frame per event", "wsb_delivered", "ws_delivered"
    )


if __name__ == "__main__":
    sys.exit(client_main(sys.argv[1:]))
