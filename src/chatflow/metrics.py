"""Prometheus metrics of one process, in a registry of the app's own.

A registry per ``Metrics`` (built by the app's lifespan), not prometheus-client's default one:
tests run several apps in one process, and each must count only its own work.  Counters and
histograms move as things happen; the values read at scrape time (runs in the database, queue
depth, subscribers, pool connections) are set by ``sample`` just before ``render``.

No label carries a chat id, run id or anything a client chose: only statuses, operation names
and pool states, all from fixed sets.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# The classic text format that generate_latest writes and every Prometheus reads (newer
# prometheus-client names version 1.0.0 as its latest, which differs only for UTF-8 names).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
RUN_ENDINGS = ("completed", "failed", "cancelled", "interrupted")
RUN_STATUSES = ("queued", "running", *RUN_ENDINGS)
# Steps and queue waits run from milliseconds to the step time limit (300 s by default).
_SLOW_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
# Inspections: a small csv in about 10 ms, a 1,000,000 x 10 xlsx in about 25 s (the limit: 60 s).
_INSPECT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60)


class Metrics:
    """Every metric of one app; the run queue calls ``run_started``, ``step_done`` and
    ``run_ended``, the rest is counted where it happens or sampled at scrape time."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        # Counted as it happens.
        self._runs_ended = Counter(
            "chatflow_runs", "Runs that ended in this process, by how", ["status"], registry=r
        )
        self._steps = Histogram(
            "chatflow_step_duration_seconds", "Time a step took, by operation", ["operation"],
            buckets=_SLOW_BUCKETS, registry=r,
        )  # fmt: skip
        self._queue_wait = Histogram(
            "chatflow_queue_wait_seconds", "Time a run waited between queued and started",
            buckets=_SLOW_BUCKETS, registry=r,
        )  # fmt: skip
        self._published = Counter(
            "chatflow_events_published", "Events this process stored (and so published)",
            registry=r,
        )  # fmt: skip
        self._delivered = Counter(
            "chatflow_events_delivered", "Events sent to WebSocket clients, one per socket",
            registry=r,
        )  # fmt: skip
        self._inspections = Histogram(
            "chatflow_upload_inspection_seconds", "Time an accepted upload's inspection took",
            buckets=_INSPECT_BUCKETS, registry=r,
        )  # fmt: skip
        self._reconnects = Counter(
            "chatflow_redis_reconnects",
            "Times the Redis subscriber lost (or could not make) its connection", registry=r,
        )  # fmt: skip
        # Set at scrape time (``sample``). Not chatflow_runs: the counter's family has that name.
        self._runs_stored = Gauge(
            "chatflow_runs_stored", "Runs in the database, by status", ["status"], registry=r
        )
        self._queue_depth = Gauge("chatflow_queue_depth", "Runs queued in the database", registry=r)
        self._subscribers = Gauge(
            "chatflow_websocket_subscribers", "WebSockets following a chat here", registry=r
        )
        self._pool = Gauge(
            "chatflow_db_pool_connections", "Database pool connections", ["state"], registry=r
        )
        for status in RUN_ENDINGS:  # present at 0, so rate() sees the first one
            self._runs_ended.labels(status)
        # The database part of a scrape, kept for a few seconds (services/observability.py).
        self.runs_counted: Mapping[str, int] | None = None
        self.runs_counted_at = float("-inf")

    def run_started(self, wait_s: float) -> None:
        """A run left the queue after ``wait_s`` seconds."""
        self._queue_wait.observe(max(0.0, wait_s))

    def step_done(self, operation: str, seconds: float) -> None:
        self._steps.labels(operation).observe(max(0.0, seconds))

    def run_ended(self, status: str) -> None:
        """A run ended here: completed, failed, cancelled or interrupted."""
        self._runs_ended.labels(status).inc()

    def events_published(self, count: int) -> None:
        self._published.inc(count)

    def events_delivered(self, count: int) -> None:
        self._delivered.inc(count)

    def upload_inspected(self, seconds: float) -> None:
        self._inspections.observe(max(0.0, seconds))

    def redis_reconnected(self) -> None:
        self._reconnects.inc()

    def sample(
        self,
        *,
        runs_by_status: Mapping[str, int] | None,
        subscribers: int,
        pool: tuple[int, int] | None,
    ) -> None:
        """Set the values read at scrape time; None: unknown now (the series are left out)."""
        self._subscribers.set(subscribers)
        self._runs_stored.clear()
        if runs_by_status is not None:
            for status in sorted({*RUN_STATUSES, *runs_by_status}):
                self._runs_stored.labels(status).set(runs_by_status.get(status, 0))
            self._queue_depth.set(runs_by_status.get("queued", 0))
        else:
            self._queue_depth.set(float("nan"))
        self._pool.clear()
        if pool is not None:
            in_use, idle = pool
            self._pool.labels("in_use").set(in_use)
            self._pool.labels("idle").set(idle)

    def render(self) -> bytes:
        """The Prometheus text exposition (``CONTENT_TYPE``) of every metric."""
        return generate_latest(self.registry)
