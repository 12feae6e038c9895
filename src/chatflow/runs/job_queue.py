"""Runs on procrastinate's job queue, shared by every process on one PostgreSQL database.

A run's job is deferred in the transaction that records the run.  Its lock, one per chat, keeps
a chat's runs in order across all workers; different chats run in parallel.  A cancel that
landed in the database (``RunStates.request_cancel``) asks procrastinate to abort the job: its
NOTIFY reaches the worker at once, which raises the run's cancel flag.  A worker that stops
heartbeating is found by the sweeper of any other worker, and its runs end ``interrupted``.
See docs/adr/0003-run-queue.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import procrastinate
from procrastinate.job_context import AbortReason, JobContext
from procrastinate.jobs import Status
from procrastinate.worker import Worker
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from chatflow.broadcaster import Broadcaster
from chatflow.db.engine import Database
from chatflow.db.models import Run
from chatflow.failures import Cancelled
from chatflow.repositories import jobs as jobs_repo
from chatflow.repositories import runs as runs_repo
from chatflow.runs import outcomes
from chatflow.runs.queue import ExecuteFn, RunHandle
from chatflow.runs.states import RunStates
from chatflow.runs.waiting import wait_for_end

log = logging.getLogger(__name__)
T = TypeVar("T")

QUEUE = "chatflow-runs"
TASK = "chatflow.run"
# A dry run waits for the chat's earlier runs at most this long in all, then simulates anyway.
TURN_WAIT_S = 600.0


def conninfo(database_url: str) -> str:
    """The libpq form of our SQLAlchemy URL (``postgresql+asyncpg://...``) for psycopg: the
    same server, user and database, and asyncpg's ``ssl=`` as libpq's ``sslmode=``."""
    url = make_url(database_url).set(drivername="postgresql")
    query = dict(url.query)
    if "ssl" in query:  # a managed PostgreSQL's ?ssl=require must hold for the workers too
        query.setdefault("sslmode", query.pop("ssl"))
    return url.set(query=query).render_as_string(hide_password=False)


class JobQueue:
    """The ``RunDispatcher`` of a PostgreSQL deployment; with ``start_worker`` it also executes
    runs (``chatflow serve`` and ``chatflow worker``), without it only submits them
    (``serve --role api``)."""

    def __init__(
        self,
        *,
        db: Database,
        broadcaster: Broadcaster,
        states: RunStates,
        execute: ExecuteFn,
        database_url: str,
        heartbeat_s: float,
        stalled_s: float,
    ) -> None:
        self.accepting = True
        self._db = db
        self._broadcaster = broadcaster
        self._states = states
        self._execute = execute
        self._heartbeat_s = heartbeat_s
        self._stalled_s = stalled_s
        self._handles: dict[str, RunHandle] = {}  # runs executing in this process
        self._turns: set[RunHandle] = set()  # dry runs waiting or running here
        self._app: procrastinate.App | None = None
        self._database_url = database_url
        self._worker: Worker | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # -- submitting (every role) -------------------------------------------------------------

    async def defer(self, session: AsyncSession, run: Run, *, base_url: str) -> None:
        await jobs_repo.defer_run(session, queue=QUEUE, task=TASK, run=run, base_url=base_url)

    def release(self, run: Run, *, base_url: str) -> None:
        return None  # committed with the run: a worker's NOTIFY listener has it already

    async def signal_cancel(self, *, chat_id: str, run_id: str, reason: str) -> None:
        handle = self._handles.get(run_id)
        if handle is not None:  # executing here: no need to wait for the NOTIFY
            handle.request_cancel(reason)
        async with self._db.write() as session:
            await jobs_repo.abort_run_job(session, run_id=run_id)

    async def cancel_chat(self, chat_id: str, reason: str) -> None:
        for handle in [*self._handles.values(), *self._turns]:
            if handle.chat_id == chat_id:
                handle.request_cancel(reason)
        async with self._db.write() as session:
            await jobs_repo.abort_chat_jobs(session, chat_id=chat_id)

    async def run_in_turn(self, chat_id: str, work: Callable[[RunHandle], Awaitable[T]]) -> T:
        """``work`` here, once every run of the chat recorded before this call has ended."""
        if not self.accepting:
            raise RuntimeError("run queue is shut down")
        handle = RunHandle(chat_id, "turn")
        self._turns.add(handle)
        deadline = asyncio.get_running_loop().time() + TURN_WAIT_S
        try:
            # A chat's runs end in order, so waiting for the newest unfinished one covers the
            # rest; it is looked up again in case it was cancelled before the older ones ended.
            while earlier := await self._unfinished(chat_id):
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break  # one bound for the whole wait: simulate on the files as they are
                await wait_for_end(
                    db=self._db,
                    broadcaster=self._broadcaster,
                    chat_id=chat_id,
                    run_id=earlier[-1].id,
                    timeout_s=remaining,
                )
            if handle.cancel.is_set():
                raise Cancelled()
            return await work(handle)
        finally:
            self._turns.discard(handle)

    async def _unfinished(self, chat_id: str) -> list[Run]:
        async with self._db.read() as session:
            return await runs_repo.list_unfinished_of_chat(session, chat_id=chat_id)

    @property
    def active(self) -> int:
        return len(self._handles)

    # -- executing (serve without a role, and chatflow worker) --------------------------------

    async def start_worker(self, *, concurrency: int) -> None:
        """Open procrastinate's pool and start taking jobs, and the stalled-worker sweeper."""
        connector = procrastinate.PsycopgConnector(
            conninfo=conninfo(self._database_url), min_size=1, max_size=concurrency + 3
        )
        app = procrastinate.App(connector=connector)
        app.task(name=TASK, queue=QUEUE, pass_context=True)(self._run_job)
        await app.open_async()
        self._app = app
        self._concurrency = concurrency
        self._tasks = [
            asyncio.create_task(self._work_forever(app), name="procrastinate-worker"),
            asyncio.create_task(self._sweep_forever(), name="stalled-runs"),
        ]

    async def _work_forever(self, app: procrastinate.App) -> None:
        """Run procrastinate's worker; start a new one if it stops by itself (its listener lost
        the database, say), so a database blip does not end this process's share of runs."""
        backoff = 0.5
        while self.accepting:
            self._worker = Worker(
                app=app,
                queues=[QUEUE],
                concurrency=self._concurrency,
                install_signal_handlers=False,  # the process's own shutdown stops it
                update_heartbeat_interval=self._heartbeat_s,
                stalled_worker_timeout=self._stalled_s,
                fetch_job_polling_interval=5.0,
                abort_job_polling_interval=1.0,  # if a NOTIFY is lost, a cancel lands in 1 s
                shutdown_graceful_timeout=None,  # shutdown() bounds it and stops the runs
            )
            try:
                await self._worker.run()
                backoff = 0.5
            except Exception:
                log.warning("the run worker stopped; starting it again", exc_info=True)
            if self.accepting:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _run_job(
        self, context: JobContext, *, run_id: str, chat_id: str, base_url: str
    ) -> None:
        """procrastinate's task: execute the run; an abort becomes the run's cancel flag."""
        handle = RunHandle(chat_id, run_id, base_url=base_url)
        self._handles[run_id] = handle
        work = asyncio.ensure_future(self._execute(handle))
        try:
            # procrastinate aborts an async job by cancelling its task; the run must instead
            # stop at its next check and end with its event, so the work is shielded.
            while not work.done():
                try:
                    await asyncio.shield(work)
                except asyncio.CancelledError:
                    shutdown = context.abort_reason() == AbortReason.SHUTDOWN
                    handle.request_cancel("shutdown" if shutdown else "cancelled")
        finally:
            self._handles.pop(run_id, None)
            handle.done.set()

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_s)
            try:
                await self.sweep_stalled()
            except Exception:  # the database may be briefly away: try again next time
                log.warning("could not look for stalled runs", exc_info=True)

    async def sweep_stalled(self) -> int:
        """End the runs of workers that stopped heartbeating as interrupted; how many."""
        assert self._app is not None
        manager = self._app.job_manager
        await manager.prune_stalled_workers(self._stalled_s)
        stalled = await manager.get_stalled_jobs(
            queue=QUEUE, task_name=TASK, seconds_since_heartbeat=self._stalled_s
        )
        ended = 0
        for job in stalled:
            run_id, chat_id = str(job.task_kwargs["run_id"]), str(job.task_kwargs["chat_id"])
            ended += await self._states.end(
                chat_id=chat_id,
                run_id=run_id,
                ending=outcomes.interrupted_by_lost_worker(),
            )
            # Finishing the job frees the chat's lock for its next run.
            with contextlib.suppress(Exception):  # another sweeper finished it first
                assert job.id is not None
                await manager.finish_job_by_id_async(job.id, status=Status.FAILED, delete_job=False)
            log.warning("run %s lost its worker; marked interrupted", run_id)
        return ended

    async def shutdown(self, grace_s: float) -> list[str]:
        """Stop taking jobs; let running runs finish within ``grace_s``, then cancel them.

        Runs still queued stay in the queue for the other workers (or the next start)."""
        self.accepting = False
        if not self._tasks:
            return []
        worker_task, sweeper = self._tasks
        if self._worker is not None:
            self._worker.stop()
        sweeper.cancel()
        _, pending = await asyncio.wait([worker_task], timeout=grace_s)
        if pending:
            for handle in list(self._handles.values()):
                handle.request_cancel("shutdown")
            await asyncio.wait([worker_task], timeout=max(grace_s, 5.0))
            worker_task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        return []

    async def aclose(self) -> None:
        if self._app is not None:
            await self._app.close_async()
            self._app = None
