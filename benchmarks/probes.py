"""Probes that watch a server from outside: a health poller and an RSS sampler, each a thread."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any, Self

import httpx
import psutil

from benchmarks.results import latency
from benchmarks.serving import API

HEALTH = f"{API}/health"


class _Probe:
    """A thread running ``_run`` from ``with`` until the block ends (it checks ``_stop``)."""

    def __init__(self, interval_s: float) -> None:
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        raise NotImplementedError


class HealthPoller(_Probe):
    """``GET /health`` every ``interval_s`` on its own connection; a slow answer is a busy loop.

    ``with HealthPoller(url) as poller: ...`` then ``poller.summary()``."""

    def __init__(self, base_url: str, interval_s: float = 0.020) -> None:
        super().__init__(interval_s)
        self._base_url = base_url
        self.latencies: list[float] = []
        self.failures = 0

    def _run(self) -> None:
        with httpx.Client(base_url=self._base_url, timeout=30.0) as client:
            client.get(HEALTH)  # open the connection before measuring
            next_at = time.perf_counter()
            while not self._stop.is_set():
                t0 = time.perf_counter()
                try:
                    ok = client.get(HEALTH).status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    self.latencies.append(time.perf_counter() - t0)
                else:
                    self.failures += 1
                # A late poll goes at once without a burst to catch up.
                next_at = max(next_at + self._interval, time.perf_counter())
                self._stop.wait(next_at - time.perf_counter())

    def summary(self) -> dict[str, Any]:
        return {**latency(self.latencies), "failures": self.failures}


class RssSampler(_Probe):
    """Samples the RSS of a process and of its children, recursively."""

    def __init__(self, pid: int, interval_s: float = 0.050) -> None:
        super().__init__(interval_s)
        self._proc = psutil.Process(pid)
        self.samples: list[tuple[float, int, int]] = []  # (perf_counter, own, children)

    def __enter__(self) -> Self:
        self._sample()  # the baseline, before the block
        return super().__enter__()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def _sample(self) -> None:
        with contextlib.suppress(psutil.Error):
            children = 0
            for child in self._proc.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    children += child.memory_info().rss
            own = self._proc.memory_info().rss
            self.samples.append((time.perf_counter(), own, children))

    def growth_mb(self) -> dict[str, float]:
        """Peak RSS above the first sample (taken on entry): the process, its children, both."""
        if not self.samples:
            return {"server": 0.0, "children": 0.0, "total": 0.0}
        first, peaks = self.samples[0], self.peaks_mb()
        start = {"server": first[1], "children": first[2], "total": first[1] + first[2]}
        return {key: peaks[key] - start[key] / 2**20 for key in start}

    def peaks_mb(self) -> dict[str, float]:
        """Peak RSS of the process, of its children, and of both together."""
        mb = 2**20
        return {
            "server": max((s[1] for s in self.samples), default=0) / mb,
            "children": max((s[2] for s in self.samples), default=0) / mb,
            "total": max((s[1] + s[2] for s in self.samples), default=0) / mb,
        }
