"""The upload of the 100k x 10 xlsx to its 201, and the event loop's health meanwhile.

The upload is timed on this tree's server and the baseline's, idle and while two other chats
run the seed workflow in a loop, beside its floor: the gate plus a plain fastexcel read of the
same file in this process. A server that sends ``Server-Timing: inspect-wait;dur=..,
inspect;dur=..`` (from the end of the body to the inspection process taking the job, and the
inspection itself) has both recorded with each upload. ``GET /health`` is polled every 20 ms
on the idle server, then while the chats run and the uploads arrive.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import fastexcel
import httpx

from benchmarks.data import INPUT
from benchmarks.options import Options
from benchmarks.probes import HealthPoller
from benchmarks.results import Results
from benchmarks.serving import API, Side, check, create_chat, server_timing, upload_file
from benchmarks.sheets import EXTRACT_STEPS, through_api
from chatflow.spreadsheets.inspection import check_workbook_container
from chatflow.spreadsheets.zip_parts import GateLimits

log = logging.getLogger("benchmarks")
BACKGROUND_CHATS = 2


def gate_and_read(xlsx: Path) -> float:
    """The upload's floor: the gate, then a plain fastexcel read of the file, in this process."""
    started = time.perf_counter()
    check_workbook_container(xlsx, GateLimits())
    fastexcel.read_excel(xlsx).load_sheet(0).to_polars()
    return time.perf_counter() - started


def timed_upload(side: Side, chat: str, xlsx: Path) -> tuple[float, dict[str, float]]:
    """Seconds from the request to the 201, and its Server-Timing; the file is deleted after."""
    started = time.perf_counter()
    response = upload_file(side.client, chat, xlsx, "upload.xlsx")
    elapsed = time.perf_counter() - started
    stored = response.json()["data"][0]["filename"]
    check(side.client.delete(f"{API}/chat/workflows/{chat}/files/{stored}"), 200, 204)
    return elapsed, server_timing(response)


@contextlib.contextmanager
def background_runs(side: Side, xlsx: Path) -> Iterator[None]:
    """Chats running the seed workflow in a loop, one client each, while the block runs."""
    chats = [create_chat(side.client, f"bench: load {i}") for i in range(BACKGROUND_CHATS)]
    for chat in chats:
        upload_file(side.client, chat, xlsx, INPUT)
    stop = threading.Event()

    def loop(chat: str) -> None:
        with httpx.Client(base_url=side.server.url, timeout=None) as own:
            while not stop.is_set():
                through_api(own, chat, EXTRACT_STEPS)

    with ThreadPoolExecutor(len(chats)) as pool:
        running = [pool.submit(loop, chat) for chat in chats]
        time.sleep(1.0)  # the runs are under way
        try:
            yield
        finally:
            stop.set()
            for future in running:
                future.result()  # a failed run fails the phase


def run_upload(res: Results, sides: list[Side], xlsx: Path, opts: Options) -> None:
    """Per round the floor and an upload to each side, idle; then each side under load."""
    chats = {side.tree.key: create_chat(side.client, "bench: upload") for side in sides}
    for side in sides:  # first-upload costs are not counted
        timed_upload(side, chats[side.tree.key], xlsx)
    for rep in range(opts.reps):
        log.info("upload round %d/%d", rep + 1, opts.reps)
        floor = gate_and_read(xlsx)
        res.add("up_floor", "upload floor: gate + plain fastexcel read, in process", "s", floor)
        for side in sides:
            _record(res, side, "", *timed_upload(side, chats[side.tree.key], xlsx))
    for side in sides:
        k = side.tree.key
        with HealthPoller(side.server.url) as idle:
            time.sleep(opts.idle_health_s)
        with background_runs(side, xlsx), HealthPoller(side.server.url) as busy:
            for rep in range(opts.reps):
                log.info("upload under load round %d/%d", rep + 1, opts.reps)
                _record(res, side, "_busy", *timed_upload(side, chats[k], xlsx))
        idle_p99 = idle.summary()["p99_ms"]
        res.add(f"health_idle_p99{k}", f"idle: health p99 ({side.tree.label})", "ms", idle_p99)
        for q, ms in ((q, busy.summary()[f"{q}_ms"]) for q in ("p50", "p99", "max")):
            res.add(f"health_{q}{k}", f"    health {q} while the uploads ran under load", "ms", ms)
        res.ratio(f"up{k}/floor", f"upload vs its floor ({side.tree.label})", f"up{k}", "up_floor")


def _record(res: Results, side: Side, when: str, seconds: float, timing: dict[str, float]) -> None:
    key = f"up{side.tree.key}{when}"
    where = side.tree.label + (f", {BACKGROUND_CHATS} chats running (b)" if when else ", idle")
    res.add(key, f"upload to the 201 ({where})", "s", seconds)
    for name, ms in timing.items():
        res.add(f"{key}_{name}", f"    Server-Timing {name}", "ms", ms)
