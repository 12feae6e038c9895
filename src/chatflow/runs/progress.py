"""Progress from worker threads to the event loop, as run-level percentages that never go back."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass

# Chunk-level ("minor") reports closer together than this are dropped.
MINOR_INTERVAL_S = 0.25


@dataclass(frozen=True)
class ProgressUpdate:
    progress: float  # the whole run, 0-100
    step_progress: float  # the current step, 0-100
    step: int  # 1-based
    total_steps: int
    operation: str
    message: str


class ProgressBridge:
    """Called from a worker thread; queues updates on the loop with call_soon_threadsafe.

    A step reports 0-100 for itself; the bridge maps that into the run's range and drops
    reports that would not move the run's progress forward (except the very first, at 0),
    and minor reports that come too soon after the previous one.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, total_steps: int) -> None:
        self._loop = loop
        self.total_steps = total_steps
        self._lock = threading.Lock()
        self._last: float | None = None
        self._last_sent = 0.0
        self._step = 0
        self._operation = ""
        self.queue: asyncio.Queue[ProgressUpdate | None] = asyncio.Queue()

    def begin_step(self, index: int, operation: str) -> None:
        with self._lock:
            self._step, self._operation = index, operation

    def report(self, percent: float, message: str, minor: bool = False) -> None:
        step_percent = min(max(float(percent), 0.0), 100.0)
        now = time.monotonic()
        with self._lock:
            overall = round((self._step + step_percent / 100.0) / self.total_steps * 100.0, 1)
            if self._last is not None and overall <= self._last:
                return
            if minor and now - self._last_sent < MINOR_INTERVAL_S:
                return
            self._last, self._last_sent = overall, now
            update = ProgressUpdate(
                overall, step_percent, self._step + 1, self.total_steps, self._operation, message
            )
        self._loop.call_soon_threadsafe(self.queue.put_nowait, update)

    def close(self) -> None:
        """Mark the end of updates; safe from the loop thread after the step's future resolved."""
        self.queue.put_nowait(None)
