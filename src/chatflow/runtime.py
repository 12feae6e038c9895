"""The typed state the app's lifespan builds and every service receives."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from chatflow.auth import KeyRing
from chatflow.broadcaster import Broadcaster
from chatflow.db.engine import Database
from chatflow.execution.workers import WorkerPool
from chatflow.keylocks import KeyLocks
from chatflow.operations.registry import Registry
from chatflow.settings import Settings
from chatflow.storage import FileStore

if TYPE_CHECKING:
    from chatflow.execution.queue import RunQueue


@dataclass
class Runtime:
    settings: Settings
    db: Database
    store: FileStore
    broadcaster: Broadcaster
    registry: Registry
    executor: ThreadPoolExecutor
    workers: WorkerPool  # processes that read and write spreadsheet files for the steps
    runs: RunQueue
    keys: KeyRing
    # Each inspection is a child process with up to inspect_memory_mb of memory.
    inspections: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(2))
    idempotency_locks: KeyLocks = field(default_factory=KeyLocks)
    open_sockets: int = 0  # WebSocket handlers still running; shutdown waits for them
    started_at: float = field(default_factory=time.monotonic)
