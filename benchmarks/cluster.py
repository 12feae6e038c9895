"""The cluster phase (issue 16): fan-out over API processes, and runs/s with 1 and 2 workers.

Events are chat messages posted through the API (``POST .../messages``); an event's
``timestamp`` is taken before it is stored, so latency is the subscriber's receive time minus
it, on one machine clock. The subscribers live in a client process of their own (``python -m
benchmarks.cluster EXPECT WS_URL...``, one URL per subscriber); each checks that ``seq`` runs
consecutively. The single process is ``chatflow serve`` on SQLite; the cluster is
``tests.cluster.Cluster`` (``serve --role api`` x 2, ``chatflow worker``) on a fresh PostgreSQL
database and the machine's Redis under a prefix of its own. In the cluster the messages are
posted to the API processes alternately, as a balancer would spread them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
from tests.cluster import Cluster
from tests.postgres import PostgresDatabases
from tests.support import free_ports

from benchmarks.data import INPUT
from benchmarks.options import Options
from benchmarks.results import Results, latency
from benchmarks.serving import API, Server, chat_with, check, serve, through_api
from benchmarks.workflows import STEPS

log = logging.getLogger("benchmarks")
REDIS_URL = "redis://127.0.0.1:6379/0"
SUBSCRIBERS, RATE, POSTERS = 100, 200.0, 16
CLIENT_TIMEOUT_S = 300.0
DEPLOY = Path(__file__).resolve().parent.parent / "deploy" / "cluster.py"


async def _subscribe(url: str, expect: int, tally: dict[str, Any], ready: asyncio.Event) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    last = count = 0
    try:
        async with connect(url, max_size=None, open_timeout=60, ping_interval=None) as ws:
            await ws.send('{"type": "ping"}')
            async for frame in ws:
                received, event = time.time(), json.loads(frame)
                if "seq" not in event:  # the pong: the server has subscribed us
                    ready.set()
                    continue
                tally["order_errors"] += bool(last) and event["seq"] != last + 1
                last = event["seq"]
                stamps = tally["stamps"]  # parsed once per event, not once per subscriber
                if (stamp := stamps.get(last)) is None:
                    stamp = stamps[last] = datetime.fromisoformat(event["timestamp"]).timestamp()
                tally["latencies"].append(received - stamp)
                tally["last_recv"] = max(tally["last_recv"], received)
                if (count := count + 1) >= expect:
                    return
    except ConnectionClosed:
        tally["closed"] += 1  # e.g. 1013: it fell too far behind


async def _client(urls: list[str], expect: int) -> dict[str, Any]:
    tally: dict[str, Any] = {"latencies": [], "stamps": {}, "last_recv": 0.0, "closed": 0}
    tally["order_errors"] = 0
    readies = [asyncio.Event() for _ in urls]
    tasks = [
        asyncio.create_task(_subscribe(u, expect, tally, r))
        for u, r in zip(urls, readies, strict=True)
    ]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 60)
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    cpu = time.process_time()
    _, pending = await asyncio.wait(tasks, timeout=CLIENT_TIMEOUT_S)
    for task in pending:
        task.cancel()
    received = len(tally["latencies"])
    complete = received == expect * len(urls) and not (tally["order_errors"] or tally["closed"])
    return {
        **{k: tally[k] for k in ("order_errors", "closed", "last_recv")},
        **{"received": received, "timed_out": len(pending), "complete": complete and not pending},
        "latency": latency(tally["latencies"]),
        "cpu_s": time.process_time() - cpu,
    }


def client_main(argv: list[str]) -> int:
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        result = runner.run(_client(argv[1:], int(argv[0])))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


async def _post(bases: list[str], chat: str, count: int, rate: float | None) -> float:
    """``count`` messages, round-robin over ``bases``: paced at ``rate``/s, or from POSTERS
    concurrent posters as fast as they are answered; the wall time the first was sent."""
    posters = asyncio.Semaphore(count if rate else POSTERS)
    async with httpx.AsyncClient(timeout=60) as client:

        async def one(i: int) -> None:
            url = f"{bases[i % len(bases)]}{API}/chat/workflows/{chat}/messages"
            async with posters:
                check(await client.post(url, json={"text": f"bench fan-out {i}"}), 201)

        started, loop = time.time(), asyncio.get_running_loop()
        origin, tasks = loop.time(), []
        for i in range(count):
            if rate:
                await asyncio.sleep(max(0.0, origin + i / rate - loop.time()))
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    return started


def fan_out(
    posts: list[str], subs: list[str], count: int, rate: float | None, pids: list[int]
) -> dict[str, Any]:
    """A fresh chat, one subscriber per URL of ``subs``, ``count`` messages posted to ``posts``;
    with the CPU the servers ``pids`` and the subscribers' process used meanwhile, in cores."""
    chat = check(httpx.post(f"{posts[0]}{API}/chat/workflows", json={"title": "fan-out"}), 201)
    ws = [f"ws{url.removeprefix('http')}{API}/chat/workflows/{chat['chat_id']}/ws" for url in subs]
    command = [sys.executable, "-m", "benchmarks.cluster", str(count), *ws]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        # The subscribers give up after CLIENT_TIMEOUT_S and always print their tally.
        assert proc.stdout is not None
        if (line := proc.stdout.readline()).strip() != "READY":
            raise RuntimeError(f"the subscriber process did not start: {line!r}")
        cpu, wall = _cpu_s(pids), time.perf_counter()
        started = asyncio.run(_post(posts, chat["chat_id"], count, rate))
        result: dict[str, Any] = json.loads(proc.stdout.readline())
        wall = time.perf_counter() - wall
        result.update(server_cores=(_cpu_s(pids) - cpu) / wall, client_cores=result["cpu_s"] / wall)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    result["delivered_per_s"] = result["received"] / max(result["last_recv"] - started, 1e-9)
    return result


def _cpu_s(pids: list[int]) -> float:
    return sum(sum(psutil.Process(pid).cpu_times()[:2]) for pid in pids)


@contextlib.contextmanager
def fresh_database() -> Iterator[dict[str, str]]:
    """The CHATFLOW_* settings of a new PostgreSQL database (dropped after) and a Redis prefix."""
    databases = PostgresDatabases()
    try:
        prefix = f"bench-{uuid.uuid4().hex[:12]}"
        env = {"CHATFLOW_DATABASE_URL": databases.fresh(), "CHATFLOW_REDIS_URL": REDIS_URL}
        yield {**env, "CHATFLOW_REDIS_PREFIX": prefix}
    finally:
        databases.drop_all()


def run_fanout(res: Results, single: Server, cluster: Cluster, opts: Options) -> None:
    one, apis, n = [single.url], [api.url for api in cluster.apis], SUBSCRIBERS
    pids = {single.url: single.pid} | {a.url: a.process.pid for a in cluster.apis if a.process}
    paced, burst = int(RATE * opts.fanout_s), opts.fanout_burst
    cases = [  # key, label, post to, subscribers on, how many, messages, rate
        ("fan1", f"paced {RATE:.0f}/s, {n} subs, 1 process (SQLite)", one, one, n, paced, RATE),
        ("fan1h", f"paced, {n // 2} subs, 1 process (SQLite)", one, one, n // 2, paced, RATE),
        ("fan2", f"paced, {n} subs over 2 API processes", apis, apis, n, paced, RATE),
        ("burst1", "unpaced, 1 API process (cluster)", apis[:1], apis[:1], n, burst, None),
        ("burst2", "unpaced, subs and posts over 2 API processes", apis, apis, n, burst, None),
    ]
    for rep in range(opts.reps):
        for key, label, posts, on, subs, count, rate in cases:
            log.info("cluster fan-out round %d/%d: %s", rep + 1, opts.reps, label)
            on_pids = [pids[url] for url in dict.fromkeys(on + posts)]
            r = fan_out(posts, [on[i % len(on)] for i in range(subs)], count, rate, on_pids)
            if not r["complete"]:
                res.notes.append(f"{label}: incomplete: {r}")
            if rate is None:
                res.add(key, f"{label}: delivered/s", "ev/s", r["delivered_per_s"])
            for q in ("p50", "p99") if rate else ():
                res.add(f"{key}_{q}", f"{label}: latency {q}", "ms", r["latency"][f"{q}_ms"])
            for side, who in (("server", "the API process(es)"), ("client", "the subscribers")):
                res.add(f"{key}_{side}", f"    CPU of {who}", "cores", r[f"{side}_cores"])
    res.ratio("fan2/fan1", "paced p99: 2 API processes vs 1 process", "fan2_p99", "fan1_p99")
    res.ratio("fan2/fan1h", "paced p99: 2 API processes vs 1 with 50 subs", "fan2_p99", "fan1h_p99")
    res.ratio("burst2/burst1", "unpaced delivered/s: 2 API processes vs 1", "burst2", "burst1")


def run_runs(res: Results, cluster: Cluster, xlsx: Path, opts: Options) -> None:
    """``opts.cluster_runs`` runs on as many chats at once, with 1 worker, then 2 workers."""
    apis = [api.url for api in cluster.apis]
    chats = []
    for i in range(opts.cluster_runs):  # spread over both API processes
        with httpx.Client(base_url=apis[i % 2], timeout=None) as client:
            chats.append((apis[i % 2], chat_with(client, "runs", xlsx, INPUT)))

    def execute(target: tuple[str, str]) -> None:
        with httpx.Client(base_url=target[0], timeout=None) as client:
            through_api(client, target[1], STEPS["seed"], INPUT)

    for workers in (1, 2):
        if workers == 2:
            cluster.restart(cluster.workers[1])
        for rep in range(-1, opts.reps):  # round -1 is not counted: each worker's first runs
            log.info("cluster runs with %d worker(s), round %d/%d", workers, rep + 1, opts.reps)
            started = time.perf_counter()
            with ThreadPoolExecutor(len(chats)) as pool:
                list(pool.map(execute, chats))
            rate = len(chats) / (time.perf_counter() - started)
            label = f"{len(chats)} runs of the seed workflow at once, {workers} worker(s)"
            if rep >= 0:
                res.add(f"runs_w{workers}", label, "runs/s", rate)
    res.ratio("runs_w2/runs_w1", "runs/s: 2 workers vs 1", "runs_w2", "runs_w1")


def run_cluster(res: Results, work: Path, xlsx: Path, opts: Options) -> None:
    """The single process and the cluster side by side."""
    with fresh_database() as env, serve(work, "single") as single:
        (work / "cluster").mkdir()
        cluster = Cluster(work / "cluster", env, apis=2, workers=2)
        try:
            for member in [*cluster.apis, cluster.workers[0]]:  # worker 2 comes later
                cluster.restart(member)
            run_fanout(res, single, cluster, opts)
            run_runs(res, cluster, xlsx, opts)
        finally:
            cluster.stop()


@contextlib.contextmanager
def launched(work: Path) -> Iterator[Server]:
    """``deploy/cluster.py`` (2 API processes, 2 workers, HAProxy) on free ports; its balancer."""
    lb, api1, api2 = free_ports(3)
    command = [sys.executable, str(DEPLOY), "--lb-port", str(lb)]
    command += ["--api-ports", f"{api1},{api2}", "--data-dir", str(work / "cluster")]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CHATFLOW_")}
    with fresh_database() as env:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env={**clean, **env})
        try:
            assert proc.stdout is not None
            while "ready: " not in (line := proc.stdout.readline()):
                if not line:  # it exits when it cannot start (its own --ready-timeout)
                    raise RuntimeError(f"the cluster did not start; logs: {work / 'cluster'}")
            url = line.split("ready: ", 1)[1].split()[0]
            yield Server(url, f"ws{url.removeprefix('http')}", proc.pid)
        finally:
            proc.terminate()
            proc.wait(60)


if __name__ == "__main__":
    sys.exit(client_main(sys.argv[1:]))
