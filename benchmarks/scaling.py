"""Measurement 5: 1, 4 and 16 chats running the 100k extract workflow at the same time."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from benchmarks.data import ROWS
from benchmarks.loop_health import HealthPoller
from benchmarks.spreadsheet import EXTRACT_STEPS, through_api


def concurrent_runs(base_url: str, chat_ids: list[str], input_name: str) -> dict[str, Any]:
    """Start one extract run in each chat at once (one HTTP client each), wait for all."""

    def one(chat_id: str) -> float:
        with httpx.Client(base_url=base_url, timeout=None) as client:
            return through_api(client, chat_id, EXTRACT_STEPS, input_name).seconds

    with HealthPoller(base_url) as poller, ThreadPoolExecutor(len(chat_ids)) as pool:
        started = time.perf_counter()
        durations = list(pool.map(one, chat_ids))
        wall = time.perf_counter() - started
    n = len(chat_ids)
    return {
        "chats": n,
        "wall_s": wall,
        "runs_per_min": n / wall * 60,
        "rows_per_s": n * ROWS / wall,
        "slowest_run_s": max(durations),
        "mean_run_s": sum(durations) / n,
        "health": poller.summary(),
    }
