"""The pool of worker processes that run steps (reads, compute, writes) for the step threads.

fastexcel's Arrow export and xlsxwriter's per-cell Python hold the GIL for hundreds of
milliseconds; run in a thread of the server process they stall the event loop that serves
every request and WebSocket.  So a step's thread hands each read or write to a worker process
and blocks on its socket while the loop runs freely.  Tables cross the socket as Arrow IPC
bytes: polars writes and reads those without the GIL, while pickling a 100k-row frame holds it
for 50-100 ms.

A job the run no longer wants (cancel, step time limit, shutdown) is first asked to stop at its
next progress report; a worker that does not answer within ``STOP_GRACE_S`` is killed and
replaced, which makes the step time limit a real one even inside a long read.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import polars as pl

from chatflow.failures import Cancelled, StepFailed
from chatflow.spreadsheets.sandbox import package_root

POLL_S = 0.05  # how often a waiting step thread checks for cancellation
STOP_GRACE_S = 2.0  # how long a stopped job may take to notice before its worker is killed
PROGRESS = "progress"  # keyword a job receives its progress callback under
STOP = "stop"
# argv: package root, job socket fd, lifeline fd, memory cap in MB (0: none), sealed/open.
# Importing the step jobs loads polars, fastexcel, xlsxwriter and every operation before the
# first job.
_BOOTSTRAP = """\
import resource, sys
root, fd, lifeline, memory_mb, sealed = sys.argv[1:6]
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
sys.path.insert(0, root)
import chatflow.runs.step_jobs, chatflow.operations
chatflow.operations.load_all()
from chatflow.runs.worker_process import serve
serve(int(fd), int(lifeline), memory_mb=int(memory_mb), sealed=sealed == "sealed")
"""

Job = Callable[..., Any]


class WorkerCrashed(Exception):
    """The worker process died during a job (killed by the OS, out of memory, a crash)."""


class WorkerError(Exception):
    """The job raised an unexpected exception in the worker; the message carries its type."""


class ResourceLimit(Exception):
    """The job passed its worker's memory cap; the worker is gone and nothing else is harmed."""

    def __init__(self, memory_mb: int) -> None:
        super().__init__(f"the step needed more than its {memory_mb} MB memory limit")
        self.memory_mb = memory_mb


# How a capped process ends when an allocation fails outside Python: Rust's allocator aborts
# (SIGABRT), a failed thread or stack mapping can be SIGSEGV/SIGBUS, and the kernel's OOM killer
# sends SIGKILL.  (A worker this pool kills itself never gets here: that path raises first.)
_OUT_OF_MEMORY_EXITS = {-6, -7, -9, -11}


class _Worker:
    """One worker process and the socket pair it takes jobs and sends replies on."""

    def __init__(self, *, memory_mb: int | None = None, sealed: bool = False) -> None:
        ours, theirs = socket.socketpair()
        # The server holds the write end and never writes: its death is EOF for the worker.
        lifeline_r, self._lifeline = os.pipe()
        # A fresh interpreter rather than multiprocessing: forking the server is unsafe (its
        # threads hold locks) and spawn would re-run the server's own __main__ module.
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _BOOTSTRAP,
                package_root(),
                str(theirs.fileno()),
                str(lifeline_r),
                str(memory_mb or 0),
                "sealed" if sealed else "open",  # also tells them apart in `ps`
            ],
            pass_fds=[theirs.fileno(), lifeline_r],
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in a terminal is the server's to handle, not ours
        )
        theirs.close()
        os.close(lifeline_r)
        self.conn = Connection(ours.detach())
        # False from sending a job until its final reply: a worker out of step is not reused.
        self.in_sync = True

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.process.kill()
        self.process.wait(5)
        self.conn.close()
        with contextlib.suppress(OSError):
            os.close(self._lifeline)

    def close(self, timeout: float) -> None:
        """Ask the worker to exit; kill it if it has not within ``timeout``."""
        with contextlib.suppress(OSError):
            self.conn.send(None)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout)
        self.kill()


class WorkerPool:
    """Up to ``size`` worker processes shared by all step threads; see ``prestart``.

    ``memory_mb`` caps each worker's address space: a job that passes it raises
    ``ResourceLimit``.  ``sealed`` workers cannot open any file once started (see sealing.py).
    """

    def __init__(self, size: int, *, memory_mb: int | None = None, sealed: bool = False) -> None:
        self._size = size
        self._memory_mb = memory_mb
        self._sealed = sealed
        self._slots = threading.BoundedSemaphore(size)
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._lock = threading.Lock()
        self._closed = False

    def call(
        self,
        job: Job,
        *args: Any,
        interrupt: Callable[[], None] = lambda: None,
        progress: Callable[[Any], None] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run ``job(*args, **kwargs)`` in a worker and return its result; blocking.

        ``progress`` (if given) is passed to the job as ``progress=`` and called here with what
        the job reports (a job may call it with None just to notice a stop request);
        ``interrupt`` is called while waiting and raises to abandon the job.  StepFailed,
        OSError and Cancelled raised by the job are raised here as they were; a job past the
        memory cap raises ResourceLimit.
        """
        while not self._slots.acquire(timeout=POLL_S):
            interrupt()
        try:
            worker = self._checkout()
            try:
                return self._run(worker, job, args, kwargs, interrupt, progress)
            finally:
                if worker.in_sync:
                    self._checkin(worker)
                else:
                    self._retire(worker)
        finally:
            self._slots.release()

    def prestart(self) -> None:
        """Start every worker now (they import their libraries in the background) rather than
        on first use, so the first run does not wait for them."""
        with self._lock:
            while len(self._idle) + len(self._busy) < self._size and not self._closed:
                self._idle.append(self._new_worker())

    def close(self, timeout: float = 5.0) -> None:
        """End every worker (idle ones at once; busy ones are killed after ``timeout``)."""
        with self._lock:
            self._closed = True
            workers = [*self._idle, *self._busy]
            self._idle.clear()
        for worker in workers:
            worker.close(timeout)

    def pids(self) -> list[int]:
        """Process ids of the live workers (for tests and diagnostics)."""
        with self._lock:
            workers = [*self._idle, *self._busy]
        return [w.pid for w in workers if w.alive()]

    def _checkout(self) -> _Worker:
        with self._lock:
            if self._closed:
                raise Cancelled()
            while self._idle:
                worker = self._idle.pop()
                if worker.alive():
                    break
                worker.kill()
            else:
                worker = self._new_worker()
            self._busy.add(worker)
            return worker

    def _new_worker(self) -> _Worker:
        return _Worker(memory_mb=self._memory_mb, sealed=self._sealed)

    def _checkin(self, worker: _Worker) -> None:
        with self._lock:
            self._busy.discard(worker)
            if not self._closed:
                self._idle.append(worker)
                return
        worker.close(1.0)

    def _retire(self, worker: _Worker) -> None:
        with self._lock:
            self._busy.discard(worker)
        worker.kill()

    def _run(
        self,
        worker: _Worker,
        job: Job,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        interrupt: Callable[[], None],
        progress: Callable[[Any], None] | None,
    ) -> Any:
        message = (job, to_wire(args), to_wire(kwargs), progress is not None)
        worker.in_sync = False
        worker.conn.send(message)
        try:
            while True:
                kind, payload = self._receive(worker, interrupt)
                if kind != PROGRESS:
                    worker.in_sync = True
                    return _outcome(kind, payload)
                if progress is not None:
                    progress(payload)
        except BaseException:
            # Cancelled, the time limit, or a failing progress callback: stop the job too.
            if not worker.in_sync:
                worker.in_sync = self._stop(worker)
            raise

    def _receive(self, worker: _Worker, interrupt: Callable[[], None]) -> tuple[str, Any]:
        while not worker.conn.poll(POLL_S):
            interrupt()
        try:
            message: tuple[str, Any] = worker.conn.recv()
            return message
        except (EOFError, OSError):
            pass
        code = worker.process.wait()
        if self._memory_mb and code in _OUT_OF_MEMORY_EXITS:
            raise ResourceLimit(self._memory_mb)
        raise WorkerCrashed(f"the worker process died (exit code {code})")

    def _stop(self, worker: _Worker) -> bool:
        """Ask the current job to stop; True once it has answered within the grace period."""
        try:
            worker.conn.send(STOP)
        except OSError:
            return False
        deadline = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < deadline:
            if not worker.conn.poll(POLL_S):
                continue
            try:
                if worker.conn.recv()[0] != PROGRESS:
                    return True
            except (EOFError, OSError):
                return False
        return False


def _outcome(kind: str, payload: Any) -> Any:
    if kind == "ok":
        return from_wire(payload)
    if kind == "failed":
        raise StepFailed(*payload)
    if kind == "cancelled":
        raise Cancelled()
    if kind == "oserror":
        raise OSError(*payload)
    if kind == "memory":
        raise ResourceLimit(payload)
    raise WorkerError(payload)


@dataclass(frozen=True)
class _Table:
    ipc: bytes


def to_wire(value: Any) -> Any:
    """``value`` with every polars frame in it (also inside dicts, lists, tuples) as IPC."""
    if isinstance(value, pl.DataFrame):
        buffer = io.BytesIO()
        value.write_ipc(buffer, compression="uncompressed")
        return _Table(buffer.getvalue())
    if isinstance(value, dict):
        return {key: to_wire(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(to_wire(item) for item in value)
    return value


def from_wire(value: Any) -> Any:
    if isinstance(value, _Table):
        return pl.read_ipc(io.BytesIO(value.ipc))
    if isinstance(value, dict):
        return {key: from_wire(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(from_wire(item) for item in value)
    return value
