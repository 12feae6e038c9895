"""``make load``: a bounded load test against a real chatflow server on loopback.

Run with ``python -m benchmarks.load [--seconds 60]``.  It starts ``python -m chatflow serve``
in a subprocess on a free 127.0.0.1 port with a throwaway data dir (the server's defaults:
no ``CHATFLOW_*`` variable is passed on), waits for ``GET /api/v1/health`` and then, for
``--seconds``:

* ``--chats`` (50) chats, each followed by ``--subscribers`` (3) WebSocket subscribers that
  connect before the chat's first event, loop: upload a 1,000-row csv (generated once), then
  execute a 3-step workflow with ``?wait=true``;
* one client calls ``GET /api/v1/health`` every ``--health-interval-ms`` (50 ms).

When the time is up no new cycle starts, the cycles in flight finish (within
``--drain-seconds``), every subscriber is given a moment to catch up, and the events each one
received are compared with the chat's stored events (``GET .../events``): per subscriber the
``seq`` values must be consecutive, and every event stored after it subscribed must have
arrived.  The server's peak RSS (itself plus its children, the upload inspections) is sampled
throughout.  Prints a summary table, writes ``benchmarks/results/load.json`` and exits 1 if
any request failed or any event was lost, duplicated or out of order.  The server is stopped
(SIGTERM, then SIGKILL) whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import websockets

from benchmarks.load_support import (
    RssSampler,
    latency,
    machine,
    make_csv,
    parse_timestamp,
    table,
)
from benchmarks.server import Server, run_server

log = logging.getLogger("benchmarks.load")

API = "/api/v1"
RESULTS = Path(__file__).resolve().parent / "results" / "load.json"
REQUEST_TIMEOUT_S = 300.0
CATCH_UP_S = 15.0
FILENAME = "people.csv"
FINAL_TYPES = {"workflow_completed", "workflow_failed", "workflow_cancelled"}


# --------------------------------------------------------------------------- the load


@dataclass
class Subscriber:
    chat_id: str
    index: int
    since: int
    seqs: list[int] = field(default_factory=list)
    closed_unexpectedly: str | None = None
    target: int | None = None
    caught_up: asyncio.Event = field(default_factory=asyncio.Event)

    def received(self, seq: int) -> None:
        self.seqs.append(seq)
        if self.target is not None and seq >= self.target:
            self.caught_up.set()

    def expect(self, last_seq: int) -> None:
        """Set ``caught_up`` once the event ``last_seq`` (the chat's last stored) arrived."""
        self.target = last_seq
        if last_seq <= self.since or (self.seqs and self.seqs[-1] >= last_seq):
            self.caught_up.set()


@dataclass
class Stats:
    requests: int = 0
    errors: list[str] = field(default_factory=list)
    health: list[float] = field(default_factory=list)
    uploads: list[float] = field(default_factory=list)
    runs: list[float] = field(default_factory=list)
    delivery: list[float] = field(default_factory=list)
    runs_completed: int = 0
    cycles_started: int = 0

    error_count: int = 0

    def error(self, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < 1000:
            self.errors.append(message)
        log.error("%s", message)


@dataclass
class Load:
    server: Server
    args: argparse.Namespace
    body: bytes
    steps: list[dict[str, Any]]
    stats: Stats = field(default_factory=Stats)
    subscribers: list[Subscriber] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def request(
        self, http: httpx.AsyncClient, method: str, path: str, expected: int, **kwargs: Any
    ) -> tuple[httpx.Response | None, float]:
        """One counted request; a wrong status or a transport error is an error."""
        started = time.perf_counter()
        try:
            response = await http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            self.stats.requests += 1
            self.stats.error(f"{method} {path}: {type(exc).__name__}: {exc}")
            return None, time.perf_counter() - started
        elapsed = time.perf_counter() - started
        self.stats.requests += 1
        if response.status_code != expected:
            self.stats.error(f"{method} {path}: {response.status_code} {response.text[:300]}")
            return None, elapsed
        return response, elapsed

    async def health_loop(self, http: httpx.AsyncClient) -> None:
        """GET /health every interval, on a fixed schedule (no burst after a slow answer)."""
        interval = self.args.health_interval_ms / 1000
        next_at = time.monotonic()
        while not self.stop.is_set():
            response, elapsed = await self.request(http, "GET", f"{API}/health", 200)
            if response is not None:
                self.stats.health.append(elapsed)
            next_at = max(next_at + interval, time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), next_at - time.monotonic())

    async def subscribe(self, sub: Subscriber, ready: asyncio.Event) -> None:
        """Follow one chat from ``sub.since``; record every seq and its delivery latency."""
        uri = f"{self.server.ws_url}{API}/chat/workflows/{sub.chat_id}/ws?since={sub.since}"
        try:
            async with websockets.connect(uri, open_timeout=30, max_size=None) as ws:
                ready.set()
                async for frame in ws:
                    received = time.time()
                    event = json.loads(frame)
                    if "seq" not in event:
                        continue
                    self.stats.delivery.append(received - parse_timestamp(event["timestamp"]))
                    sub.received(int(event["seq"]))
        except asyncio.CancelledError:
            raise
        except websockets.ConnectionClosed as exc:
            sub.closed_unexpectedly = f"closed {exc.rcvd.code if exc.rcvd else None}"
        except Exception as exc:
            sub.closed_unexpectedly = f"{type(exc).__name__}: {exc}"
        finally:
            ready.set()
            sub.caught_up.set()  # nothing more will arrive
        if sub.closed_unexpectedly is None:
            sub.closed_unexpectedly = "closed by the server"

    async def chat_loop(self, http: httpx.AsyncClient, chat_id: str) -> None:
        """Upload, then execute with wait, until told to stop."""
        base = f"{API}/chat/workflows/{chat_id}"
        while not self.stop.is_set():
            self.stats.cycles_started += 1
            files = {"file": (FILENAME, self.body, "text/csv")}
            response, elapsed = await self.request(http, "POST", f"{base}/upload", 201, files=files)
            if response is None:
                await asyncio.sleep(0.5)
                continue
            self.stats.uploads.append(elapsed)
            body = {"input": FILENAME, "steps": self.steps}
            response, elapsed = await self.request(
                http, "POST", f"{base}/execute", 200, params={"wait": "true"}, json=body
            )
            if response is None:
                await asyncio.sleep(0.5)
                continue
            status = response.json()["data"]["status"]
            if status != "completed":
                self.stats.error(f"run in chat {chat_id} ended {status}: {response.text[:300]}")
                continue
            self.stats.runs.append(elapsed)
            self.stats.runs_completed += 1


def choose_steps(names: set[str]) -> tuple[list[dict[str, Any]], str]:
    """Three steps: select, rename, extract to a file; or three chained extracts."""
    extract = "excel/extract-columns-to-file"
    if extract not in names:
        raise RuntimeError(f"{extract} is not registered; cannot run the load")
    steps: list[dict[str, Any]]
    if {"excel/select-columns", "excel/rename-columns"} <= names:
        steps = [
            {
                "operation": "excel/select-columns",
                "arguments": {"columns": ["customer_id", "email", "postal_code", "city"]},
            },
            {
                "operation": "excel/rename-columns",
                "arguments": {"mapping": {"customer_id": "id", "postal_code": "zip"}},
            },
            {
                "operation": extract,
                "arguments": {"columns": ["zip", "city"], "remove_duplicates": True},
            },
        ]
        return steps, "select-columns -> rename-columns -> extract-columns-to-file"
    steps = [
        {"operation": extract, "arguments": {"columns": cols}}
        for cols in (
            ["customer_id", "email", "postal_code", "city"],
            ["customer_id", "postal_code", "city"],
            ["postal_code", "city"],
        )
    ]
    steps[-1]["arguments"].update(remove_duplicates=True, output="postal_codes.xlsx")
    return steps, "extract-columns-to-file x3 (chained)"


async def fetch_events(http: httpx.AsyncClient, chat_id: str) -> list[dict[str, Any]]:
    """Every stored event of the chat, paging through ``?since=``."""
    stored: list[dict[str, Any]] = []
    since = 0
    while True:
        response = await http.get(
            f"{API}/chat/workflows/{chat_id}/events", params={"since": since, "limit": 10_000}
        )
        response.raise_for_status()
        page = response.json()["data"]
        stored.extend(page)
        if len(page) < 10_000:
            return stored
        since = page[-1]["seq"]


def check_delivery(subs: list[Subscriber], stored: dict[str, list[int]]) -> dict[str, Any]:
    """Lost, duplicated and out-of-order events across every subscriber."""
    lost = duplicated = out_of_order = gaps = expected_total = 0
    examples: list[str] = []
    for sub in subs:
        for before, after in zip(sub.seqs, sub.seqs[1:], strict=False):
            if after == before:
                duplicated += 1
            elif after < before:
                out_of_order += 1
            elif after != before + 1:
                gaps += 1
        expected = {seq for seq in stored[sub.chat_id] if seq > sub.since}
        expected_total += len(expected)
        missing = expected - set(sub.seqs)
        unknown = set(sub.seqs) - set(stored[sub.chat_id])
        lost += len(missing) + len(unknown)
        if (missing or unknown) and len(examples) < 10:
            examples.append(
                f"chat {sub.chat_id} subscriber {sub.index}: missing {sorted(missing)[:10]}, "
                f"not stored {sorted(unknown)[:10]}"
            )
    return {
        "subscribers": len(subs),
        "events_stored": sum(len(v) for v in stored.values()),
        "deliveries_expected": expected_total,
        "deliveries_received": sum(len(s.seqs) for s in subs),
        "lost": lost,
        "duplicated": duplicated,
        "out_of_order": out_of_order,
        "gaps": gaps,
        "examples": examples,
    }


async def run_load(server: Server, args: argparse.Namespace) -> dict[str, Any]:
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    body = make_csv(args.rows)
    limits = httpx.Limits(max_connections=args.chats + 10, max_keepalive_connections=args.chats)
    timeout = httpx.Timeout(REQUEST_TIMEOUT_S)
    async with (
        httpx.AsyncClient(base_url=server.url, limits=limits, timeout=timeout) as http,
        httpx.AsyncClient(base_url=server.url, timeout=timeout) as health_http,
    ):
        response = await http.get(f"{API}/operations")
        response.raise_for_status()
        steps, workflow = choose_steps({op["name"] for op in response.json()["data"]})
        load = Load(server=server, args=args, body=body, steps=steps)

        chats: list[tuple[str, int]] = []
        for i in range(args.chats):
            created = await http.post(f"{API}/chat/workflows", json={"title": f"load {i}"})
            created.raise_for_status()
            data = created.json()["data"]
            chats.append((data["chat_id"], int(data.get("last_seq", 0))))

        sub_tasks: list[asyncio.Task[None]] = []
        readies: list[asyncio.Event] = []
        for chat_id, last_seq in chats:
            for index in range(args.subscribers):
                sub = Subscriber(chat_id=chat_id, index=index, since=last_seq)
                load.subscribers.append(sub)
                ready = asyncio.Event()
                readies.append(ready)
                sub_tasks.append(asyncio.create_task(load.subscribe(sub, ready)))
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 60)

        started = time.monotonic()
        health_task = asyncio.create_task(load.health_loop(health_http))
        chat_tasks = [asyncio.create_task(load.chat_loop(http, chat_id)) for chat_id, _ in chats]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(load.stop.wait(), args.seconds)
        load.stop.set()
        load_window = time.monotonic() - started
        _, pending = await asyncio.wait(chat_tasks + [health_task], timeout=args.drain_seconds)
        for task in pending:
            load.stats.error(f"a client loop was still busy {args.drain_seconds} s after the end")
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        elapsed = time.monotonic() - started
        requests_during_run = load.stats.requests

        stored = {
            chat_id: [int(e["seq"]) for e in await fetch_events(http, chat_id)]
            for chat_id, _ in chats
        }
        # Let every subscriber catch up with what is stored, then close them.
        for sub in load.subscribers:
            sub.expect(stored[sub.chat_id][-1] if stored[sub.chat_id] else 0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(s.caught_up.wait() for s in load.subscribers)), CATCH_UP_S
            )
        unexpected = [s for s in load.subscribers if s.closed_unexpectedly is not None]
        for task in sub_tasks:
            task.cancel()
        await asyncio.gather(*sub_tasks, return_exceptions=True)
        for sub in unexpected:
            load.stats.error(
                f"subscriber {sub.index} of chat {sub.chat_id} ended early: "
                f"{sub.closed_unexpectedly}"
            )

    stats = load.stats
    delivery = check_delivery(load.subscribers, stored)
    return {
        "workflow": workflow,
        "steps": steps,
        "load_window_s": round(load_window, 3),
        "elapsed_s": round(elapsed, 3),
        "requests": requests_during_run,
        "requests_per_s": round(requests_during_run / elapsed, 2),
        "runs_completed": stats.runs_completed,
        "runs_per_s": round(stats.runs_completed / elapsed, 3),
        "uploads": len(stats.uploads),
        "health": latency(stats.health),
        "upload": latency(stats.uploads),
        "run": latency(stats.runs),
        "event_delivery": latency(stats.delivery),
        "errors": stats.error_count,
        "error_examples": stats.errors[:20],
        "events": delivery,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0, help="load duration (60)")
    parser.add_argument("--chats", type=int, default=50, help="chats looping at once (50)")
    parser.add_argument("--subscribers", type=int, default=3, help="WebSockets per chat (3)")
    parser.add_argument("--rows", type=int, default=1000, help="rows of the uploaded csv (1000)")
    parser.add_argument("--health-interval-ms", type=float, default=50.0, help="(50)")
    parser.add_argument(
        "--drain-seconds", type=float, default=120.0, help="wait for cycles in flight (120)"
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"json ({RESULTS})")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.chats < 1 or args.subscribers < 0 or args.rows < 1:
        parser.error("--seconds, --chats and --rows must be positive")
    return args


def _terminated(signum: int, _frame: object) -> None:
    # Outside the event loop: unwind (stopping the server in ``run_server``) on SIGTERM.
    # Inside it, ``run_load`` cancels itself instead.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminated)
    load_before = os.getloadavg()
    try:
        with (
            tempfile.TemporaryDirectory(prefix="chatflow-load-") as tmp,
            run_server(Path(tmp) / "data", Path(tmp) / "server.log") as server,
        ):
            with RssSampler(server.pid) as rss:
                try:
                    result = asyncio.run(run_load(server, args))
                finally:
                    signal.signal(signal.SIGTERM, _terminated)  # the loop reset it
            server_log = (Path(tmp) / "server.log").read_bytes()[-4000:].decode(errors="replace")
    except (KeyboardInterrupt, asyncio.CancelledError):
        sys.stderr.write("load test interrupted; the server was stopped\n")
        return 130
    result["config"] = {
        "seconds": args.seconds,
        "chats": args.chats,
        "subscribers": args.subscribers,
        "rows": args.rows,
        "health_interval_ms": args.health_interval_ms,
        "server_workers": 4,
    }
    result["server_rss"] = {
        "peak_total_mb": round(rss.peak_total / 2**20, 1),
        "peak_server_mb": round(rss.peak_server / 2**20, 1),
        "peak_children_mb": round(rss.peak_children / 2**20, 1),
        "samples": rss.samples,
    }
    result["machine"] = machine()
    # Other work on the machine skews every figure: record how busy it was.
    result["machine"]["loadavg_1m_before"] = round(load_before[0], 2)
    result["machine"]["loadavg_1m_after"] = round(os.getloadavg()[0], 2)
    events = result["events"]
    result["ok"] = (
        result["errors"] == 0
        and events["lost"] == 0
        and events["duplicated"] == 0
        and events["out_of_order"] == 0
        and events["gaps"] == 0
    )
    if not result["ok"] and server_log:
        result["server_log_tail"] = server_log
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    sys.stdout.write("chatflow load test\n" + table(result) + f"  written to {args.output}\n")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
