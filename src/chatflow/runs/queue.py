"""Run scheduling: one chat's runs in submission order, different chats in parallel.

``RunDispatcher`` is what the rest of the code sees.  ``RunQueue`` is the one-process kind (the
default, on SQLite): it owns one drain task per busy chat and awaits or cancels every one of
them on shutdown; how a run executes is the callback's business.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from chatflow.db.models import Run
from chatflow.failures import Cancelled

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(eq=False)  # a handle is its own identity (kept in sets)
class RunHandle:
    """A run executing in this process: its cancel flag (read by step threads), a done signal."""

    chat_id: str
    run_id: str
    cancel: threading.Event = field(default_factory=threading.Event)
    cancel_reason: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    base_url: str = ""  # for links in the run's events; set by whoever submits
    # Work that is not a stored run (a dry run) but takes its turn in the chat's queue.
    job: Callable[[RunHandle], Awaitable[None]] | None = None

    def request_cancel(self, reason: str) -> None:
        """Make the run stop at its next check.  Whether a user's cancel may still land is
        the database's call (``RunStates.request_cancel``); this only carries it to the steps."""
        if self.cancel_reason is None:
            self.cancel_reason = reason
        self.cancel.set()


class RunDispatcher(Protocol):
    """Where submitted runs go: this process's queue (``RunQueue``) or the job queue shared by
    every process on one PostgreSQL database (``runs/job_queue.py``)."""

    accepting: bool

    async def defer(self, session: AsyncSession, run: Run, *, base_url: str) -> None:
        """Enqueue ``run`` inside the transaction that records it (a no-op if released later)."""

    def release(self, run: Run, *, base_url: str) -> None:
        """After that transaction commits: start it here if this dispatcher runs it."""

    async def signal_cancel(self, *, chat_id: str, run_id: str, reason: str) -> None:
        """Carry a cancel that landed (or a shutdown) to wherever the run executes."""

    async def cancel_chat(self, chat_id: str, reason: str) -> None:
        """Stop every queued or running run of ``chat_id`` (the chat is being deleted)."""

    async def run_in_turn(self, chat_id: str, work: Callable[[RunHandle], Awaitable[T]]) -> T:
        """Run ``work`` here once the chat's earlier runs have ended; its result."""

    @property
    def active(self) -> int:
        """Runs this process is executing or holds queued."""

    async def shutdown(self, grace_s: float) -> list[str]:
        """Stop taking runs; the ids of runs this process held that never started."""

    async def aclose(self) -> None:
        """Release what it holds (after ``shutdown``)."""


ExecuteFn = Callable[[RunHandle], Awaitable[None]]


class RunQueue:
    """Per-chat FIFO queues of runs, drained by tasks this object owns."""

    def __init__(self, execute: ExecuteFn) -> None:
        self._execute = execute
        self._waiting: dict[str, deque[RunHandle]] = {}
        self._drainers: dict[str, asyncio.Task[None]] = {}
        self._handles: dict[str, RunHandle] = {}
        self.accepting = True

    async def defer(self, session: AsyncSession, run: Run, *, base_url: str) -> None:
        return None  # queued in memory once committed (``release``): nothing to write

    def release(self, run: Run, *, base_url: str) -> None:
        self.submit(run.chat_id, run.id, base_url=base_url)

    def submit(self, chat_id: str, run_id: str, *, base_url: str = "") -> RunHandle:
        if not self.accepting:
            raise RuntimeError("run queue is shut down")
        handle = RunHandle(chat_id, run_id, base_url=base_url)
        self._enqueue(handle)
        return handle

    async def signal_cancel(self, *, chat_id: str, run_id: str, reason: str) -> None:
        handle = self._handles.get(run_id)
        if handle is not None:
            handle.request_cancel(reason)

    def _enqueue(self, handle: RunHandle) -> None:
        chat_id = handle.chat_id
        self._handles[handle.run_id] = handle
        self._waiting.setdefault(chat_id, deque()).append(handle)
        if chat_id not in self._drainers:
            # A context of its own: the drain outlives the request that started it, and the
            # runs it executes later must not log under that request's id.
            self._drainers[chat_id] = asyncio.create_task(
                self._drain(chat_id), name=f"runs:{chat_id}", context=contextvars.Context()
            )

    async def run_in_turn(self, chat_id: str, work: Callable[[RunHandle], Awaitable[T]]) -> T:
        """Run ``work`` when the chat's earlier runs are done, as if it were a run; its result.

        If the caller stops waiting, the work is cancelled (or never starts); Cancelled if the
        work was stopped (its chat deleted, the server shutting down) before it finished.
        """
        if not self.accepting:
            raise RuntimeError("run queue is shut down")
        outcome: asyncio.Future[T] = asyncio.get_running_loop().create_future()

        async def job(handle: RunHandle) -> None:
            if handle.cancel.is_set():
                outcome.cancel()
                return
            try:
                outcome.set_result(await work(handle))
            except asyncio.CancelledError:
                outcome.cancel()
                raise
            except Exception as exc:
                outcome.set_exception(exc)

        handle = RunHandle(chat_id, f"turn-{uuid.uuid4()}", job=job)
        self._enqueue(handle)
        try:
            await handle.done.wait()
        except asyncio.CancelledError:
            handle.request_cancel("cancelled")
            raise
        if not outcome.done() or outcome.cancelled():
            raise Cancelled()  # the chat was deleted or the server is shutting down
        return outcome.result()

    def get(self, run_id: str) -> RunHandle | None:
        return self._handles.get(run_id)

    async def _drain(self, chat_id: str) -> None:
        waiting = self._waiting[chat_id]
        try:
            while waiting:
                handle = waiting.popleft()
                try:
                    await (handle.job or self._execute)(handle)
                except Exception:
                    log.exception("run %s crashed outside its own error handling", handle.run_id)
                finally:
                    handle.done.set()
                    self._handles.pop(handle.run_id, None)
        finally:
            self._drainers.pop(chat_id, None)
            if not waiting:
                self._waiting.pop(chat_id, None)

    async def cancel_chat(self, chat_id: str, reason: str) -> None:
        """Ask every queued or running run of ``chat_id`` to stop."""
        for handle in self._handles.values():
            if handle.chat_id == chat_id:
                handle.request_cancel(reason)

    @property
    def active(self) -> int:
        """Runs submitted and not yet finished (queued or running)."""
        return sum(handle.job is None for handle in self._handles.values())

    async def aclose(self) -> None:
        return None

    async def shutdown(self, grace_s: float) -> list[str]:
        """Stop accepting; let running runs finish within ``grace_s``, then cancel them.

        Returns the runs that never started, for the caller to mark interrupted.
        """
        self.accepting = False
        never_started: list[RunHandle] = []
        for waiting in self._waiting.values():
            never_started.extend(waiting)
            waiting.clear()
        for handle in never_started:
            handle.done.set()
            self._handles.pop(handle.run_id, None)
        drainers = list(self._drainers.values())
        if drainers:
            _, still_running = await asyncio.wait(drainers, timeout=grace_s)
            if still_running:
                for handle in list(self._handles.values()):
                    handle.request_cancel("shutdown")
                # Steps see the flag at their next progress report; give them a moment.
                _, still_running = await asyncio.wait(still_running, timeout=max(grace_s, 5.0))
                for task in still_running:
                    task.cancel()
                await asyncio.gather(*still_running, return_exceptions=True)
        return [handle.run_id for handle in never_started if handle.job is None]
