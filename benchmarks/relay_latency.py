"""One-off: how long an event takes to reach a WebSocket on the process that stored it, and on a
second API process through Redis (docs/scaling.md, "Live events across processes").

Two ``chatflow serve`` processes on one fresh PostgreSQL database and the Redis on 127.0.0.1;
one subscriber on each; ``--events`` messages posted one at a time through the first process.
Per event: the time from sending the POST to each subscriber's receiving it. Medians and p99 of
each round, then the median over ``--repeats`` rounds.

    PYTHONPATH=$PWD/src:$PWD .venv/bin/python -m benchmarks.relay_latency --repeats 3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from tests.postgres import PostgresDatabases
from tests.support import chatflow_process, free_ports
from websockets.asyncio.client import connect

API = "/api/v1/chat/workflows"


async def _round(ports: list[int], events: int) -> dict[str, float]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports[0]}", timeout=30) as http:
        chat = (await http.post(API, json={"title": "relay"})).json()["data"]["chat_id"]
        sockets = [await connect(f"ws://127.0.0.1:{port}/chat/{chat}") for port in ports]
        received: list[dict[int, float]] = [{}, {}]
        done = [asyncio.Event(), asyncio.Event()]

        async def listen(i: int) -> None:
            async for frame in sockets[i]:
                received[i][json.loads(frame)["seq"]] = time.perf_counter()
                if len(received[i]) == events:
                    done[i].set()

        listeners = [asyncio.create_task(listen(i)) for i in range(2)]
        sent: dict[int, float] = {}
        for n in range(events):
            start = time.perf_counter()
            said = await http.post(f"{API}/{chat}/messages", json={"text": f"m{n}"})
            said.raise_for_status()
            seq = (await http.get(f"{API}/{chat}")).json()["data"]["last_seq"]
            sent[seq] = start
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(d.wait() for d in done)), 30)
        for task in listeners:
            task.cancel()
        for ws in sockets:
            await ws.close()
    figures = {}
    for name, got in zip(("same process", "other process"), received, strict=True):
        if len(got) < len(sent):
            raise RuntimeError(f"{name}: {len(sent) - len(got)} events never arrived")
        ms = sorted((got[seq] - sent[seq]) * 1000 for seq in sent)
        figures[f"{name} median ms"] = statistics.median(ms)
        figures[f"{name} p99 ms"] = ms[int(len(ms) * 0.99) - 1]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args()
    databases = PostgresDatabases()
    rounds = []
    try:
        for _ in range(options.repeats):
            env = {
                "CHATFLOW_DATABASE_URL": databases.fresh(),
                "CHATFLOW_REDIS_URL": "redis://127.0.0.1:6379/0",
                "CHATFLOW_REDIS_PREFIX": f"chatflow_bench_{uuid.uuid4().hex[:8]}",
                "CHATFLOW_LOG_LEVEL": "warning",
            }
            ports = free_ports(2)
            with tempfile.TemporaryDirectory() as tmp:
                data = Path(tmp) / "data"
                with (
                    chatflow_process(data, Path(tmp) / "a.log", port=ports[0], env=env),
                    chatflow_process(data, Path(tmp) / "b.log", port=ports[1], env=env),
                ):
                    rounds.append(asyncio.run(_round(ports, options.events)))
    finally:
        databases.drop_all()
    for key in rounds[0]:
        values = [r[key] for r in rounds]
        sys.stdout.write(f"{key}: median {statistics.median(values):.2f} (rounds: {values})\n")


if __name__ == "__main__":
    main()
