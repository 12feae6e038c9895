"""The typed state the app's lifespan builds and every service receives."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from chatflow.auth import KeyRing
from chatflow.broadcaster import Broadcaster
from chatflow.db.engine import Database
from chatflow.keylocks import KeyLocks
from chatflow.metrics import Metrics
from chatflow.operations.registry import Registry
from chatflow.settings import Settings
from chatflow.storage import FileStore

if TYPE_CHECKING:
    from chatflow.runs.executor import RunExecutor
    from chatflow.runs.queue import RunDispatcher
    from chatflow.runs.worker_pool import WorkerPool
    from chatflow.services.relay import RedisRelay
    from chatflow.spreadsheets.inspection_pool import InspectionPool


@dataclass
class Runtime:
    settings: Settings
    db: Database
    store: FileStore
    broadcaster: Broadcaster
    registry: Registry
    step_threads: ThreadPoolExecutor  # each runs one step at a time, waiting on a process
    worker_processes: WorkerPool  # where the steps' reads, compute and writes run
    executor: RunExecutor  # runs a queued run to its end (its step runner and status changes)
    runs: RunDispatcher  # this process's queue, or the job queue on PostgreSQL
    keys: KeyRing
    inspections: InspectionPool  # each upload's file is vetted in a child process of its own
    relay: RedisRelay | None = None  # with CHATFLOW_REDIS_URL: events of the other processes
    metrics: Metrics = field(default_factory=Metrics)  # this app's own registry (GET /metrics)
    # The migration scripts' heads, read once at start-up: readiness compares the database's.
    schema_heads: frozenset[str] = frozenset()
    idempotency_locks: KeyLocks = field(default_factory=KeyLocks)
    open_sockets: int = 0  # WebSocket handlers still running; shutdown waits for them
    started_at: float = field(default_factory=time.monotonic)
