"""Measurement 3 over the wire: WebSocket fan-out of one chat's events.

Over the wire: subscribers live in a separate client process (``python -m benchmarks.fanout``)
holding N WebSockets to one chat of a ``benchmarks.publish_server`` (the real app plus a
bench-only route), which publishes N events itself, on its own loop, through
``services.events.emit`` and the real broadcaster and event store: as fast as its concurrent
publishers can, or paced.  Latency is the event's own ``timestamp`` (taken by the server just
before it stores and fans the event out) to the moment the client read the frame, on one
machine clock.  Every subscriber checks that ``seq`` goes 1, 2, 3, ... with no gap, duplicate
or reordering.  With ``batch`` the subscribers ask for ``?batch=true`` (several queued events
in one JSON-array frame); events are counted one by one either way.  The broadcaster on its
own, in process, is ``benchmarks.broadcaster_alone``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import selectors
import subprocess
import sys
import time
from array import array
from datetime import datetime
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


if __name__ == "__main__":
    sys.exit(client_entry())
