"""The app factory: wires settings, database, storage, broadcaster and run queue."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import TypedDict

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from chatflow import __version__
from chatflow.api import (
    chats,
    docs_ui,
    errors,
    files,
    observability,
    openapi,
    runs,
    system,
    websocket,
)
from chatflow.api.assets import AssetDir
from chatflow.api.body_limit import BodyLimit, streaming_routes
from chatflow.api.page import WEB_DIR, page_router
from chatflow.api.request_ids import RequestIds
from chatflow.auth import KeyRing
from chatflow.broadcaster import Broadcaster, Event, StoreFn
from chatflow.db.engine import Database
from chatflow.db.migrate import head_revisions, upgrade
from chatflow.metrics import Metrics
from chatflow.operations import load_all
from chatflow.operations.registry import Registry
from chatflow.repositories import files as files_repo
from chatflow.runs.executor import RunExecutor
from chatflow.runs.queue import RunDispatcher, RunQueue
from chatflow.runs.states import RunStates
from chatflow.runs.step_runner import StepRunner
from chatflow.runs.worker_pool import WorkerPool
from chatflow.runtime import Runtime
from chatflow.services import events
from chatflow.services.relay import RedisRelay
from chatflow.settings import Settings
from chatflow.spreadsheets.inspection_pool import InspectionPool
from chatflow.spreadsheets.writing import check_xlsx_engine
from chatflow.storage import FileStore

log = logging.getLogger(__name__)


class State(TypedDict):
    runtime: Runtime


DESCRIPTION = """
Chat-driven spreadsheet workflows. Open a chat, upload spreadsheets into it, run workflows of
named operations on them, download the results, and follow every run live on the chat's
WebSocket (`ws://HOST:PORT/chat/{chat_id}`, optionally `?since=N`; also on the second port,
`CHATFLOW_WS_PORT`, default 5051, where the seed's clients connect).

Success bodies are `{"data": ...}`; errors are
`{"error": {"code": "...", "message": "...", "details": ...}}` with a 4xx status.
"""


async def start_runtime(settings: Settings) -> Runtime:
    """Build every resource, each after what it needs; the caller must ``stop_runtime`` it."""
    problem = settings.role_problem()
    if problem is not None:
        raise RuntimeError(problem)
    check_xlsx_engine(settings.xlsx_writer)  # an unknown name fails here; a missing Rust one warns
    for conflict in settings.limit_conflicts():
        log.warning("upload limits disagree: %s; raise the memory cap or lower the limit", conflict)
    await asyncio.to_thread(settings.files_dir.mkdir, parents=True, exist_ok=True)
    await asyncio.to_thread(upgrade, settings.resolved_database_url)
    heads = frozenset(await asyncio.to_thread(head_revisions))
    db = Database(settings.resolved_database_url, pool_size=settings.db_pool_size)
    store = FileStore(settings.files_dir)
    metrics = Metrics()
    relay = None
    if settings.redis_url:
        relay = RedisRelay(settings.redis_url, prefix=settings.redis_prefix, db=db, metrics=metrics)
    broadcaster = Broadcaster(
        store=_counted(events.make_store(db), metrics),
        queue_size=settings.subscriber_queue_size,
        fanout=relay.stored_here if relay else None,
    )
    if relay is not None:
        relay.attach(broadcaster)
    registry = load_all()
    threads = ThreadPoolExecutor(settings.step_threads, thread_name_prefix="chatflow-step")
    processes = WorkerPool(settings.worker_processes, memory_mb=settings.step_memory_mb)
    inspections = InspectionPool(
        slots=settings.inspect_processes,
        memory_mb=settings.inspect_memory_mb,
        timeout_s=settings.inspect_timeout_s,
    )
    executor, runs = _run_machinery(
        settings,
        db=db,
        broadcaster=broadcaster,
        registry=registry,
        steps=StepRunner(threads=threads, processes=processes, store=store, settings=settings),
        metrics=metrics,
    )
    rt = Runtime(
        settings=settings,
        db=db,
        store=store,
        broadcaster=broadcaster,
        registry=registry,
        step_threads=threads,
        worker_processes=processes,
        executor=executor,
        runs=runs,
        keys=KeyRing(settings.resolved_api_keys()),
        inspections=inspections,
        relay=relay,
        metrics=metrics,
        schema_heads=heads,
    )
    await _start_work(rt)
    return rt


async def _start_work(rt: Runtime) -> None:
    """Start what this process's role runs, once start-up recovery has run."""
    settings = rt.settings
    executes = settings.role != "api"
    if settings.prestart_workers and executes:
        rt.worker_processes.prestart()
    if settings.prestart_inspections and settings.role != "worker":
        await rt.inspections.prestart()
    await _recover(rt)
    if rt.relay is not None:
        rt.relay.start()  # ended by stop_runtime; Redis being down delays nothing here
    if settings.uses_job_queue and executes:  # serve without a role, and chatflow worker
        from chatflow.runs.job_queue import JobQueue

        assert isinstance(rt.runs, JobQueue)
        await rt.runs.start_worker(concurrency=settings.worker_concurrency)


def _run_machinery(
    settings: Settings,
    *,
    db: Database,
    broadcaster: Broadcaster,
    registry: Registry,
    steps: StepRunner,
    metrics: Metrics,
) -> tuple[RunExecutor, RunDispatcher]:
    """The executor, and where runs go: this process's queue, or PostgreSQL's job queue."""
    states = RunStates(db=db, broadcaster=broadcaster, metrics=metrics)
    executor = RunExecutor(
        db=db,
        broadcaster=broadcaster,
        registry=registry,
        steps=steps,
        states=states,
        metrics=metrics,
    )
    if not settings.uses_job_queue:
        return executor, RunQueue(executor.execute)
    # Imported here: procrastinate and psycopg cost a process on SQLite about 0.2 s to import.
    from chatflow.runs.job_queue import JobQueue

    return executor, JobQueue(
        db=db,
        broadcaster=broadcaster,
        states=states,
        execute=executor.execute,
        database_url=settings.resolved_database_url,
        heartbeat_s=settings.worker_heartbeat_s,
        stalled_s=settings.worker_stalled_s,
    )


def _counted(store: StoreFn, metrics: Metrics) -> StoreFn:
    """``store``, counting the events it stored (each is then published)."""

    async def counted(topic: str, batch: list[Event]) -> list[Event | None]:
        stored = await store(topic, batch)
        metrics.events_published(sum(event is not None for event in stored))
        return stored

    return counted


async def _recover(rt: Runtime) -> None:
    """End the runs a previous process left unfinished; remove files no row knows of.

    On the shared job queue other processes may be running runs and writing files right now:
    their runs are left to the stalled-worker sweeper, and only files older than any run can
    last are removed."""
    min_age_s = 0.0
    if rt.settings.uses_job_queue:
        min_age_s = rt.settings.step_timeout_s * (rt.settings.max_steps + 1)
    else:
        interrupted = await rt.executor.states.interrupt_unfinished()
        if interrupted:
            log.warning(
                "marked %d run(s) left unfinished by a previous process interrupted", interrupted
            )
    async with rt.db.read() as session:
        known = await files_repo.all_storage_names(session)
    swept = await asyncio.to_thread(rt.store.sweep, known, min_age_s=min_age_s)
    if swept:
        log.info(
            "removed %d temporary or orphaned file(s) from %s",
            swept,
            rt.settings.resolved_data_dir,
        )


async def drain_runtime(rt: Runtime) -> None:
    """Stop taking runs, let running ones finish within the grace period, close subscribers.

    Idempotent: the server calls it before closing connections, the lifespan again after.
    """
    never_started = await rt.runs.shutdown(rt.settings.shutdown_grace_s)
    if never_started:
        await rt.executor.states.interrupt_unfinished(never_started)
    await rt.broadcaster.aclose()


async def stop_runtime(rt: Runtime) -> None:
    """Release resources in the reverse order of ``start_runtime``."""
    await drain_runtime(rt)
    await rt.runs.aclose()
    if rt.relay is not None:
        await rt.relay.aclose()  # after the broadcaster: its last events are published
    await rt.inspections.close()
    await asyncio.to_thread(rt.worker_processes.close)  # they do not get the server's SIGTERM
    await asyncio.to_thread(rt.step_threads.shutdown, wait=True, cancel_futures=True)
    await rt.db.dispose()


def create_app(settings: Settings) -> FastAPI:
    """A FastAPI app serving ``settings``; nothing is opened until its lifespan starts."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[State]:
        rt = await start_runtime(settings)
        app.state.runtime = rt  # for the server's shutdown hook (see cli.py)
        try:
            yield {"runtime": rt}
        finally:
            await stop_runtime(rt)

    app = FastAPI(
        title="chatflow",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # Served from the package by api/docs_ui.py instead: FastAPI's pages load from CDNs.
        docs_url=None,
        redoc_url=None,
        # operationId is the endpoint's name (execute, upload...): what generated clients call.
        generate_unique_id_function=lambda route: route.name,
    )
    errors.install_error_handlers(app)
    for module in (system, chats, files, runs):
        app.include_router(module.router, prefix="/api/v1")
    app.include_router(runs.saved, prefix="/api/v1")
    app.include_router(websocket.router)
    app.include_router(observability.router)
    app.include_router(docs_ui.make_router())
    app.include_router(page_router(AssetDir(WEB_DIR)))  # read here, once per app, not at import
    openapi.install(app, registry=load_all(), settings=settings)
    # Inside CORS (added after it, so outermost), so a 413 still carries CORS headers.
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_json_kb * 1024,
        streaming=streaming_routes(app.routes),
    )
    if settings.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID"],
            expose_headers=["X-Request-ID"],
        )
    # Outermost: every log line of a request, the access log's included, carries its id.
    app.add_middleware(RequestIds)
    return app
