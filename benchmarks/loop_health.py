"""Event-loop health: poll GET /api/v1/health every 20 ms from a thread and time each answer.

The poller runs in the benchmark process (not the server), with its own connection, so a slow
answer means the server's event loop was busy (or starved of the GIL by a worker thread).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import fastexcel
import httpx

from benchmarks.data import EXTRACT_COLUMNS
from benchmarks.stats import latency_summary
from chatflow.execution.pipeline import read_head
from chatflow.execution.workers import WorkerPool
from chatflow.operations.extract_columns import extract_columns
from chatflow.spreadsheets.reading import read_table
from chatflow.spreadsheets.writing import write_workbook

INTERVAL_S = 0.020
MAX_DURATION_S = 1800.0  # a safety bound; the poller is always stopped explicitly


class HealthPoller:
    """``with HealthPoller(url) as poller: ...`` then ``poller.summary()``."""

    def __init__(self, base_url: str, interval_s: float = INTERVAL_S) -> None:
        self._base_url = base_url
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="health-poller", daemon=True)
        self.latencies: list[float] = []
        self.failures = 0

    def __enter__(self) -> HealthPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        started = time.perf_counter()
        with httpx.Client(base_url=self._base_url, timeout=30.0) as client:
            client.get("/api/v1/health")  # open the connection before measuring
            next_at = time.perf_counter()
            while not self._stop.is_set() and time.perf_counter() - started < MAX_DURATION_S:
                t0 = time.perf_counter()
                try:
                    ok = client.get("/api/v1/health").status_code == 200
                except httpx.HTTPError:
                    ok = False
                elapsed = time.perf_counter() - t0
                if ok:
                    self.latencies.append(elapsed)
                else:
                    self.failures += 1
                next_at += self._interval
                delay = next_at - time.perf_counter()
                if delay > 0:
                    self._stop.wait(delay)
                else:
                    next_at = time.perf_counter()  # late: poll again at once, do not burst

    def summary(self) -> dict[str, Any]:
        return {**latency_summary(self.latencies), "failures": self.failures}


# --- in-process: which stage of a step stalls the loop ------------------------------------------

TICK_S = 0.005


async def _lag_while(fn: Callable[[], Any]) -> dict[str, Any]:
    """Run ``fn`` in a worker thread while a 5 ms ticker measures how late the loop wakes."""
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(1) as pool:
        future = loop.run_in_executor(pool, fn)
        lags: list[float] = []
        started = time.perf_counter()
        while not future.done():
            t0 = time.perf_counter()
            await asyncio.sleep(TICK_S)
            lags.append(max(0.0, time.perf_counter() - t0 - TICK_S))
        await future
        elapsed = time.perf_counter() - started
    return {**latency_summary(lags), "seconds": elapsed}


def loop_lag_stages(src: Path, out_dir: Path) -> dict[str, dict[str, Any]]:
    """Loop lag while each stage of the extract step runs in a thread, as in the server."""
    df = read_table(src, kind="xlsx")
    out = extract_columns(df, EXTRACT_COLUMNS, remove_duplicates=True)

    def load_only() -> None:
        fastexcel.read_excel(src).load_sheet(0, header_row=None, dtypes="string")

    def load_and_convert() -> None:
        fastexcel.read_excel(src).load_sheet(0, header_row=None, dtypes="string").to_polars()

    workers = WorkerPool(1)

    def read_in_worker() -> None:
        workers.call(read_head, src, kind="xlsx", sheet=None, delimiter=None, rows=None)

    def write_in_worker() -> None:
        workers.call(write_workbook, {"Sheet1": out}, out_dir / "lag.xlsx")

    async def measure() -> dict[str, dict[str, Any]]:
        return {
            "read_table": await _lag_while(lambda: read_table(src, kind="xlsx")),
            "fastexcel load_sheet": await _lag_while(load_only),
            "fastexcel load_sheet + to_polars": await _lag_while(load_and_convert),
            "write_xlsx": await _lag_while(
                lambda: write_workbook({"Sheet1": out}, out_dir / "lag.xlsx")
            ),
            # What the server does: the same read and write handed to a worker process.
            "read via worker": await _lag_while(read_in_worker),
            "write via worker": await _lag_while(write_in_worker),
        }

    try:
        workers.call(int, "0")  # start the worker outside the measurement
        return asyncio.run(measure())
    finally:
        workers.close()
