"""The worker process's side: take jobs from the server's socket, run them, send replies.

Started by ``WorkerPool`` as a fresh interpreter (see worker_pool.py); it exits with the server
(the lifeline) and, for excel/sql, runs queries in its own sealed worker (``confined_pool``).
"""

from __future__ import annotations

import atexit
import logging
import os
import resource
import threading
import traceback
from multiprocessing.connection import Connection
from typing import Any

from chatflow import logs
from chatflow.failures import Cancelled, StepFailed
from chatflow.runs import sealing
from chatflow.runs.worker_pool import (
    PROGRESS,
    STOP,
    ResourceLimit,
    WorkerPool,
    from_wire,
    to_wire,
)

log = logging.getLogger(__name__)


def serve(fd: int, lifeline: int, *, memory_mb: int = 0, sealed: bool = False) -> None:
    """Run jobs from the socket ``fd`` until it closes or sends None.

    ``memory_mb`` is what jobs may allocate on top of the worker's footprint once its libraries
    are loaded: that footprint is mostly address space reserved by polars' threads and
    allocator, grows with the CPU count, and is not the job's to pay for.
    """
    conn = Connection(fd)
    # The server's format (CHATFLOW_LOG_FORMAT, inherited): its JSON lines stay one per line.
    logs.setup_logging(logging.WARNING, logs.format_from_env())
    threading.Thread(target=_exit_with_server, args=(lifeline,), daemon=True).start()
    if sealed:
        sealing.warm_up()
    if memory_mb:
        global _memory_mb
        _memory_mb = memory_mb
        limit = _address_space() + memory_mb * 1024 * 1024
        # Only the soft limit: this worker's own sealed worker must be able to set a larger
        # one (it has its own footprint), and no job code can call setrlimit.
        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    if sealed:
        sealing.seal()
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return  # the server is gone
        if message is None:
            return
        if message == STOP:
            continue  # it came after the job it was meant for had finished
        try:
            conn.send(_answer(conn, message, memory_mb))
        except (OSError, ValueError):
            return


def _answer(conn: Connection, message: Any, memory_mb: int) -> tuple[str, Any]:
    """Run one job; its reply, every way it can end included."""
    job, args, kwargs, wants_progress = from_wire(message)

    def report(payload: Any) -> None:
        if conn.poll() and conn.recv() == STOP:
            raise Cancelled()
        if payload is not None:
            conn.send((PROGRESS, payload))

    if wants_progress:
        kwargs[PROGRESS] = report
    try:
        return ("ok", to_wire(job(*args, **kwargs)))
    except StepFailed as exc:
        return ("failed", (exc.code, exc.message, exc.details))
    except Cancelled:
        return ("cancelled", None)
    except MemoryError:
        return ("memory", memory_mb)
    except ResourceLimit as exc:  # from this worker's own sealed worker
        return ("memory", exc.memory_mb)
    except OSError as exc:
        return ("oserror", (exc.errno, exc.strerror or str(exc)))
    except Exception as exc:
        log.error("worker job failed\n%s", traceback.format_exc())
        return ("error", f"{type(exc).__name__}: {exc}")


_confined: WorkerPool | None = None
_confined_lock = threading.Lock()
_memory_mb: int | None = None  # this worker's own cap, which its sealed worker gets too


def _address_space() -> int:
    """This process's mapped address space in bytes (what RLIMIT_AS counts)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def confined_pool() -> WorkerPool:
    """This process's sealed worker for excel/sql, started on first use and ended at exit.

    It gets the same memory cap as this process; a step worker that dies takes it along (the
    lifeline), so it needs no other owner.
    """
    global _confined
    with _confined_lock:
        if _confined is None:
            _confined = WorkerPool(1, memory_mb=_memory_mb, sealed=True)
            atexit.register(_confined.close, 1.0)
        return _confined


def _exit_with_server(lifeline: int) -> None:
    """Exit the moment the server process is gone, even in the middle of a job.

    Otherwise a worker orphaned by ``kill -9`` would run its job to the end: a long read for
    nothing, or a write past its last progress report that renames a file into the chat's
    storage which no database row knows of.
    """
    os.read(lifeline, 1)  # returns only at EOF: the server never writes to it
    os._exit(70)
