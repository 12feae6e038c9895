"""``make load``: a bounded load test against a real chatflow server on loopback.

``python -m benchmarks.load [--seconds 60] [--chats 50] [--subscribers 3] [--cluster]``: a
server with default settings (``benchmarks.serving``; with ``--cluster``, ``deploy/cluster.py``'s
2 API processes and 2 workers on a fresh PostgreSQL database, loaded through its HAProxy); for
``--seconds`` every chat loops "upload a 1,000-row csv, then a 3-step workflow with
``?wait=true``" while its WebSocket subscribers follow it and one client polls ``GET /health``
every 50 ms. Then the cycles in flight finish, each subscriber's events are compared with the
chat's stored events (consecutive ``seq``, none lost, none unknown), a summary (with every
upload's time and Server-Timing) is printed and written to benchmarks/results/load.json
(load-cluster.json for the cluster), and the exit status is 1 if any request failed or any event
went astray.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import json
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import websockets

from benchmarks.cluster import launched
from benchmarks.probes import RssSampler
from benchmarks.results import latency, machine
from benchmarks.serving import API, Server, serve, server_timing

RESULTS = Path(__file__).resolve().parent / "results" / "load.json"
CLUSTER = RESULTS.with_name("load-cluster.json")
FILENAME = "people.csv"
CATCH_UP_S = 15.0
START_S = 10.0  # uploads begun later than this are past the opening burst of every chat
STEPS: list[dict[str, Any]] = [
    {
        "operation": "excel/select-columns",
        "arguments": {"columns": ["customer_id", "email", "postal_code", "city"]},
    },
    {
        "operation": "excel/rename-columns",
        "arguments": {"mapping": {"customer_id": "id", "postal_code": "zip"}},
    },
    {
        "operation": "excel/extract-columns-to-file",
        "arguments": {"columns": ["zip", "city"], "remove_duplicates": True},
    },
]


def make_csv(rows: int) -> bytes:
    """``rows`` people with a header; ids keep their leading zeros."""
    cities = [("Lisbon", "1000-001"), ("Porto", "4000-007"), ("Braga", "4700-035")]
    cities += [("Faro", "8000-078"), ("Coimbra", "3000-033"), ("Evora", "7000-500")]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["customer_id", "first_name", "last_name", "email", "postal_code", "city"])
    for i in range(rows):
        city, postal = cities[i % len(cities)]
        first, last = f"First{i % 97}", f"Last{i % 89}"
        writer.writerow(
            [f"{i:06d}", first, last, f"{first}.{last}.{i}@example.com".lower(), postal, city]
        )
    return buffer.getvalue().encode()


@dataclass
class Subscriber:
    chat_id: str
    since: int  # the chat's last seq when it subscribed
    seqs: list[int] = field(default_factory=list)
    ended: str | None = None  # why the socket ended before we closed it
    target: int = 2**62
    caught_up: asyncio.Event = field(default_factory=asyncio.Event)

    def received(self, seq: int) -> None:
        self.seqs.append(seq)
        if seq >= self.target:
            self.caught_up.set()

    def expect(self, last_seq: int) -> None:
        self.target = last_seq
        if last_seq <= max([self.since, *self.seqs]):
            self.caught_up.set()


@dataclass
class Load:
    server: Server
    args: argparse.Namespace
    body: bytes
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    requests: int = 0
    errors: list[str] = field(default_factory=list)
    times: dict[str, list[float]] = field(default_factory=dict)  # health, upload, run, delivery
    uploads: list[dict[str, float]] = field(default_factory=list)  # each one's time and timing
    started: float = field(default_factory=time.perf_counter)

    async def request(
        self, http: httpx.AsyncClient, method: str, path: str, expected: int, **kw: Any
    ) -> httpx.Response | None:
        """One counted, timed request; a transport error or another status is an error."""
        self.requests += 1
        started = time.perf_counter()
        try:
            response = await http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            self.errors.append(f"{method} {path}: {type(exc).__name__}: {exc}")
            return None
        if response.status_code != expected:
            self.errors.append(f"{method} {path}: {response.status_code} {response.text[:300]}")
            return None
        kind = "health" if path.endswith("/health") else path.rsplit("/", 1)[-1]
        elapsed = time.perf_counter() - started
        self.times.setdefault(kind, []).append(elapsed)
        if kind == "upload":
            at = started - self.started
            self.uploads.append({"at_s": round(at, 3), "s": elapsed, **server_timing(response)})
        return response

    async def health_loop(self, http: httpx.AsyncClient) -> None:
        """``GET /health`` on a fixed schedule (no burst after a slow answer)."""
        interval = self.args.health_interval_ms / 1000
        next_at = time.monotonic()
        while not self.stop.is_set():
            await self.request(http, "GET", f"{API}/health", 200)
            next_at = max(next_at + interval, time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), next_at - time.monotonic())

    async def follow(self, sub: Subscriber, ready: asyncio.Event) -> None:
        """Record every seq the chat's socket delivers and how long after it was stored."""
        uri = f"{self.server.ws_url}{API}/chat/workflows/{sub.chat_id}/ws?since={sub.since}"
        delivery = self.times.setdefault("delivery", [])
        try:
            async with websockets.connect(uri, open_timeout=30, max_size=None) as ws:
                ready.set()
                async for frame in ws:
                    received, event = time.time(), json.loads(frame)
                    if "seq" in event:
                        stamp = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
                        delivery.append(received - stamp.timestamp())
                        sub.received(int(event["seq"]))
            sub.ended = "closed by the server"
        except websockets.ConnectionClosed as exc:
            sub.ended = f"closed {exc.rcvd.code if exc.rcvd else None}"
        except Exception as exc:  # any failure of the socket is reported, none hidden
            sub.ended = f"{type(exc).__name__}: {exc}"
        finally:
            ready.set()
            sub.caught_up.set()  # nothing more will arrive

    async def chat_loop(self, http: httpx.AsyncClient, chat_id: str) -> None:
        """Upload, then execute with ``?wait=true``, until told to stop."""
        base = f"{API}/chat/workflows/{chat_id}"
        files = {"file": (FILENAME, self.body, "text/csv")}
        body = {"input": FILENAME, "steps": STEPS}
        while not self.stop.is_set():
            run = None
            if await self.request(http, "POST", f"{base}/upload", 201, files=files):
                run = await self.request(
                    http, "POST", f"{base}/execute", 200, params={"wait": "true"}, json=body
                )
            if run is None:
                await asyncio.sleep(0.5)
            elif (status := run.json()["data"]["status"]) != "completed":
                self.errors.append(f"a run in chat {chat_id} ended {status}")
            else:
                self.times.setdefault("completed", []).append(0.0)


async def stored_seqs(http: httpx.AsyncClient, chat_id: str) -> list[int]:
    """Every stored event's seq, paging through ``?since=``."""
    seqs: list[int] = []
    while True:
        params = {"since": seqs[-1] if seqs else 0, "limit": 10_000}
        response = await http.get(f"{API}/chat/workflows/{chat_id}/events", params=params)
        page = [int(e["seq"]) for e in response.raise_for_status().json()["data"]]
        seqs += page
        if len(page) < 10_000:
            return seqs


def check_delivery(subs: list[Subscriber], stored: dict[str, list[int]]) -> dict[str, int]:
    """Lost (or never stored), duplicated and out-of-order deliveries across subscribers."""
    counts = {"stored": sum(map(len, stored.values())), "expected": 0, "received": 0}
    counts.update(lost=0, duplicated=0, out_of_order=0, gaps=0)
    for sub in subs:
        for before, after in zip(sub.seqs, sub.seqs[1:], strict=False):
            counts["duplicated"] += after == before
            counts["out_of_order"] += after < before
            counts["gaps"] += after > before + 1
        expected = {seq for seq in stored[sub.chat_id] if seq > sub.since}
        counts["expected"] += len(expected)
        counts["received"] += len(sub.seqs)
        counts["lost"] += len(expected ^ set(sub.seqs))
    return counts


@contextlib.asynccontextmanager
async def cancelled_on_exit(tasks: list[asyncio.Task[None]]) -> AsyncIterator[None]:
    """However the block ends (Ctrl-C, SIGTERM, an error), its tasks end with it."""
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def drive(load: Load, http: httpx.AsyncClient, chats: list[str]) -> float:
    """The load itself, then the cycles in flight; the seconds it all took."""
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=load.server.url, timeout=300) as health_http:
        tasks = [asyncio.create_task(load.chat_loop(http, chat)) for chat in chats]
        tasks.append(asyncio.create_task(load.health_loop(health_http)))
        async with cancelled_on_exit(tasks):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(load.stop.wait(), load.args.seconds)
            load.stop.set()
            _, pending = await asyncio.wait(tasks, timeout=load.args.drain_seconds)
            busy = f"a client loop was still busy {load.args.drain_seconds} s after the end"
            load.errors += [busy for _ in pending]
    return time.monotonic() - started


async def run_load(server: Server, args: argparse.Namespace) -> dict[str, Any]:
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    load = Load(server, args, make_csv(args.rows))
    limits = httpx.Limits(max_connections=args.chats + 10, max_keepalive_connections=args.chats)
    async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=300) as http:
        subs: list[Subscriber] = []
        for i in range(args.chats):
            created = await http.post(f"{API}/chat/workflows", json={"title": f"load {i}"})
            chat = created.raise_for_status().json()["data"]
            subs += [Subscriber(chat["chat_id"], chat["last_seq"]) for _ in range(args.subscribers)]
        readies = [asyncio.Event() for _ in subs]
        followers = [
            asyncio.create_task(load.follow(s, r)) for s, r in zip(subs, readies, strict=True)
        ]
        async with cancelled_on_exit(followers):
            await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 60)
            chats = list(dict.fromkeys(s.chat_id for s in subs))
            elapsed = await drive(load, http, chats)
            stored = {chat: await stored_seqs(http, chat) for chat in chats}
            for sub in subs:
                sub.expect(stored[sub.chat_id][-1] if stored[sub.chat_id] else 0)
            with contextlib.suppress(TimeoutError):
                caught_up = asyncio.gather(*(s.caught_up.wait() for s in subs))
                await asyncio.wait_for(caught_up, CATCH_UP_S)
            load.errors += [
                f"a subscriber of {s.chat_id} ended early: {s.ended}" for s in subs if s.ended
            ]
    return summarise(load, elapsed, check_delivery(subs, stored))


def summarise(load: Load, elapsed: float, events: dict[str, int]) -> dict[str, Any]:
    times = load.times
    runs = len(times.get("completed", []))
    ok = not load.errors and not any(
        events[k] for k in ("lost", "duplicated", "out_of_order", "gaps")
    )
    return {
        "ok": ok,
        "elapsed_s": round(elapsed, 1),
        "config": {k: v for k, v in vars(load.args).items() if k != "output"},
        "requests": load.requests,
        "requests_per_s": round(load.requests / elapsed, 2),
        "runs_completed": runs,
        "runs_per_s": round(runs / elapsed, 3),
        **{
            kind: latency(times.get(kind, []))
            for kind in ("health", "upload", "execute", "delivery")
        },
        # Every chat uploads at once at the start: that burst, and the rest.
        "upload_after_start": latency([u["s"] for u in load.uploads if u["at_s"] > START_S]),
        "upload_server_timing": {
            name: latency([u[name] / 1000 for u in load.uploads if name in u])
            for name in sorted({name for u in load.uploads for name in u} - {"at_s", "s"})
        },
        "uploads": load.uploads,
        "events": events,
        "errors": len(load.errors),
        "error_examples": load.errors[:20],
    }


def table(result: dict[str, Any]) -> str:
    def ms(kind: str, blocks: dict[str, Any] = result) -> str:
        block = blocks[kind]
        return f"p50 {block['p50_ms']:.1f} ms  p99 {block['p99_ms']:.1f} ms  (n={block['count']})"

    events, rss, timing = result["events"], result["server_rss_mb"], result["upload_server_timing"]
    rows = [
        ("server", result["tree"]),
        ("duration", f"{result['elapsed_s']} s ({result['config']['seconds']} s of load)"),
        ("requests", f"{result['requests']} ({result['requests_per_s']} req/s)"),
        ("runs completed", f"{result['runs_completed']} ({result['runs_per_s']} runs/s)"),
        *((f"{kind} latency", ms(kind)) for kind in ("health", "upload")),
        (f"  started after {START_S:g} s", ms("upload_after_start")),
        *((f"  Server-Timing {name}", ms(name, timing)) for name in timing),
        *((f"{kind} latency", ms(kind)) for kind in ("execute", "delivery")),
        ("deliveries", f"{events['received']} of {events['expected']} ({events['stored']} stored)"),
        (
            "lost / duplicated / out of order",
            f"{events['lost']} / {events['duplicated']} / {events['out_of_order']}",
        ),
        ("errors", str(result["errors"])),
        (
            "server peak RSS",
            f"{rss['total']:.0f} MB (server {rss['server']:.0f}, children {rss['children']:.0f})",
        ),
        ("result", "PASS" if result["ok"] else "FAIL"),
    ]
    width = max(len(name) for name, _ in rows)
    return "".join(f"  {name:<{width}}  {value}\n" for name, value in rows)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0, help="load duration (60)")
    parser.add_argument("--chats", type=int, default=50, help="chats looping at once (50)")
    parser.add_argument("--subscribers", type=int, default=3, help="WebSockets per chat (3)")
    parser.add_argument("--rows", type=int, default=1000, help="rows of the uploaded csv (1000)")
    parser.add_argument("--health-interval-ms", type=float, default=50.0, help="(50)")
    parser.add_argument(
        "--drain-seconds", type=float, default=120.0, help="for cycles in flight (120)"
    )
    parser.add_argument(
        "--cluster", action="store_true", help="2 API processes + 2 workers behind HAProxy"
    )
    parser.add_argument("--output", type=Path, help=f"json ({RESULTS})")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.chats < 1 or args.subscribers < 0 or args.rows < 1:
        parser.error("--seconds, --chats and --rows must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_before = machine()["load_average"]
    try:
        with contextlib.ExitStack() as stack:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="chatflow-load-")))
            if args.cluster:  # deploy/cluster.py's topology
                server = stack.enter_context(launched(tmp))
                tree, args.output = "cluster: 2 API + 2 workers, HAProxy", args.output or CLUSTER
            else:
                server, tree = stack.enter_context(serve(tmp, "server")), "this tree"
            rss = stack.enter_context(RssSampler(server.pid, 0.1))
            result = {"tree": tree, **asyncio.run(run_load(server, args))}
    except (KeyboardInterrupt, asyncio.CancelledError):
        sys.stderr.write("load test interrupted; the server was stopped\n")
        return 130
    # Other work on the machine skews every figure: record how busy it was.
    result.update(
        server_rss_mb=rss.peaks_mb(), machine={**machine(), "load_average_before": load_before}
    )
    output = args.output or RESULTS
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    sys.stdout.write("chatflow load test\n" + table(result) + f"  written to {output}\n")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
