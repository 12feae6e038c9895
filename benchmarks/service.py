"""The upload of the 100k x 10 xlsx to its 201, and the event loop's health meanwhile.

The upload is timed idle and while two other chats run the seed workflow in a loop, beside its
floor: the gate plus a plain fastexcel read of the same file in this process. The server's
``Server-Timing`` (receive, inspect-wait, inspect, store) is recorded with each upload.
``GET /health`` is polled every 20 ms on the idle server, then while the chats run and the
uploads arrive.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from tests.support import create_chat, upload

from benchmarks.data import INPUT
from benchmarks.options import Options
from benchmarks.probes import HealthPoller
from benchmarks.results import Results
from benchmarks.serving import API, Server, chat_with, check, server_timing, through_api
from benchmarks.workflows import STEPS, read_plain
from chatflow.spreadsheets.inspection import check_workbook_container
from chatflow.spreadsheets.zip_parts import GateLimits

log = logging.getLogger("benchmarks")
BACKGROUND_CHATS = 2


def gate_and_read(xlsx: Path) -> float:
    """The upload's floor: the gate, then a plain fastexcel read of the file, in this process."""
    started = time.perf_counter()
    check_workbook_container(xlsx, GateLimits())
    read_plain(xlsx)
    return time.perf_counter() - started


def timed_upload(client: httpx.Client, chat: str, xlsx: Path) -> tuple[float, dict[str, float]]:
    """Seconds from the request to the 201, and its Server-Timing; the file is deleted after."""
    started = time.perf_counter()
    response = upload(client, chat, xlsx, "upload.xlsx")
    elapsed = time.perf_counter() - started
    stored = check(response, 201)[0]["filename"]
    check(client.delete(f"{API}/chat/workflows/{chat}/files/{stored}"), 200, 204)
    return elapsed, server_timing(response)


@contextlib.contextmanager
def background_runs(server: Server, xlsx: Path) -> Iterator[None]:
    """Chats running the seed workflow in a loop, one client each, while the block runs."""
    with httpx.Client(base_url=server.url, timeout=None) as client:
        chats = [
            chat_with(client, f"bench: load {i}", xlsx, INPUT) for i in range(BACKGROUND_CHATS)
        ]
    stop = threading.Event()

    def loop(chat: str) -> None:
        with httpx.Client(base_url=server.url, timeout=None) as own:
            while not stop.is_set():
                through_api(own, chat, STEPS["seed"], INPUT)

    with ThreadPoolExecutor(len(chats)) as pool:
        running = [pool.submit(loop, chat) for chat in chats]
        time.sleep(1.0)  # the runs are under way: the load to measure in, not a synchronisation
        try:
            yield
        finally:
            stop.set()
            for future in running:
                future.result()  # a failed run fails the phase


def run_upload(res: Results, server: Server, xlsx: Path, opts: Options) -> None:
    """Per round the floor and an upload, idle; then the uploads beside two busy chats."""
    with httpx.Client(base_url=server.url, timeout=None) as client:
        chat = create_chat(client, "bench: upload")
        timed_upload(client, chat, xlsx)  # first-upload costs are not counted
        for rep in range(opts.reps):
            log.info("upload round %d/%d", rep + 1, opts.reps)
            res.add(
                "up_floor", "upload floor: gate + plain fastexcel read", "s", gate_and_read(xlsx)
            )
            _record(res, "up", "idle", *timed_upload(client, chat, xlsx))
        with HealthPoller(server.url) as idle:
            time.sleep(opts.idle_health_s)
        with background_runs(server, xlsx), HealthPoller(server.url) as busy:
            for rep in range(opts.reps):
                log.info("upload under load round %d/%d", rep + 1, opts.reps)
                where = f"{BACKGROUND_CHATS} chats running (b)"
                _record(res, "up_busy", where, *timed_upload(client, chat, xlsx))
    res.add("health_idle_p99", "idle: health p99", "ms", idle.summary()["p99_ms"])
    for q in ("p50", "p99", "max"):
        label = f"    health {q} while the uploads ran under load"
        res.add(f"health_{q}", label, "ms", busy.summary()[f"{q}_ms"])
    res.ratio("up/floor", "upload vs its floor", "up", "up_floor")


def _record(res: Results, key: str, where: str, seconds: float, timing: dict[str, float]) -> None:
    res.add(key, f"upload to the 201 ({where})", "s", seconds)
    for name, ms in timing.items():
        res.add(f"{key}_{name}", f"    Server-Timing {name}", "ms", ms)
