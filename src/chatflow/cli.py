"""Command line: ``chatflow serve``, ``chatflow worker`` and ``chatflow db upgrade``."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.config import LOG_LEVELS, STARTUP_FAILURE

from chatflow import redaction
from chatflow.app import create_app, drain_runtime, start_runtime, stop_runtime
from chatflow.db.migrate import upgrade
from chatflow.logs import setup_logging
from chatflow.settings import Settings

log = logging.getLogger("chatflow")

WS_MAX_MESSAGE_BYTES = 64 * 1024


class Server(uvicorn.Server):
    """uvicorn, plus a second listening port and a drain step before connections close.

    uvicorn closes WebSockets (1012) before the app's lifespan hears of the shutdown; draining
    first lets running steps finish and subscribers get a 1001 with their last seq.

    ``ws_port`` (the seed's WebSocket port) is one more listener of this same server: same
    config, app, lifespan and connection set, so shutdown closes both ports, drains once and
    waits for the connections of both.
    """

    def __init__(
        self, config: uvicorn.Config, *, freeze_gc: bool = False, ws_port: int = 0
    ) -> None:
        super().__init__(config)
        self._freeze_gc = freeze_gc
        self._ws_port = ws_port

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        if self.started and sockets is None and self._ws_port not in (0, self.config.port):
            # uvicorn set ``started`` once the first port listened; whoever polls it (tests)
            # must not see it before the second one does.
            self.started = False
            await self._listen_on_ws_port()
            self.started = True
        if self._freeze_gc:
            # Modules, the operation registry and settings live as long as the process: moving
            # them out of the collector's view keeps its full collections (which stop the event
            # loop for every subscriber) proportional to live request objects only.
            gc.freeze()

    async def _listen_on_ws_port(self) -> None:
        """Serve the same app on ``ws_port`` with the protocol factory uvicorn uses for ``port``."""
        config = self.config

        def create_protocol(_loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Protocol:
            return config.http_protocol_class(  # type: ignore[call-arg]
                config=config,
                server_state=self.server_state,
                app_state=self.lifespan.state,
                _loop=_loop,
            )

        try:
            server = await asyncio.get_running_loop().create_server(
                create_protocol,
                host=config.host,
                port=self._ws_port,
                ssl=config.ssl,
                backlog=config.backlog,
            )
        except OSError as exc:
            # As uvicorn does when the main port is taken: undo start-up and exit with 3.
            log.error(
                "cannot listen on the WebSocket port %d: %s (choose another with --ws-port or "
                "CHATFLOW_WS_PORT; 0 turns it off)",
                self._ws_port,
                exc,
            )
            for listening in self.servers:
                listening.close()
            await self.lifespan.shutdown()
            sys.exit(STARTUP_FAILURE)
        self.servers.append(server)
        log.info(
            "also serving WebSockets (and the same HTTP API) on port %d: "
            "ws://%s:%d/chat/{chat_id} (CHATFLOW_WS_PORT)",
            self._ws_port,
            config.host,
            self._ws_port,
        )

    async def shutdown(self, sockets: Any = None) -> None:
        app = self.config.loaded_app
        runtime = getattr(getattr(app, "state", None), "runtime", None)
        if runtime is None:  # the loaded app may be wrapped in middleware
            inner = getattr(app, "app", None)
            runtime = getattr(getattr(inner, "state", None), "runtime", None)
        if runtime is not None:
            await drain_runtime(runtime)
            # Let WebSocket handlers send their 1001 before uvicorn closes what is left.
            deadline = asyncio.get_running_loop().time() + 3
            while runtime.open_sockets and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110 (bounded, shutdown only)
                await asyncio.sleep(0.02)
        await super().shutdown(sockets)


def build_server(
    settings: Settings, *, freeze_gc: bool = False, app: FastAPI | None = None
) -> Server:
    """A server for ``settings`` (also used by tests and benchmarks), serving ``app`` if given.

    ``freeze_gc`` is for a process that only serves (``chatflow serve``): it freezes everything
    allocated up to the end of start-up, which would also pin a host process's objects."""
    # Before uvicorn logs anything: its access log would carry ?token= keys.
    redaction.install_redaction(settings.resolved_api_keys())
    config = uvicorn.Config(
        app or create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        ws_ping_interval=settings.ws_ping_interval_s,
        # Compression costs CPU per subscriber per event; events are small JSON.
        ws_per_message_deflate=False,
        # Clients only ever send pings and an auth message: no reason to take 16 MiB frames.
        ws_max_size=WS_MAX_MESSAGE_BYTES,
        ws_ping_timeout=settings.ws_ping_interval_s,
        timeout_graceful_shutdown=int(settings.shutdown_grace_s) + 5,
        lifespan="on",
        # No logging config of uvicorn's own: its error and access lines reach the root
        # logger's handler (logs.setup_logging), in the same format, with the request's id.
        log_config=None,
        # Given here so uvicorn does not read FORWARDED_ALLOW_IPS from the environment itself.
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )
    return Server(config, freeze_gc=freeze_gc, ws_port=settings.ws_port)


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {
        key: value
        for key, value in {
            "host": getattr(args, "host", None),
            "port": getattr(args, "port", None),
            "ws_port": getattr(args, "ws_port", None),
            "data_dir": getattr(args, "data_dir", None),
            "log_level": getattr(args, "log_level", None),
            "database_url": getattr(args, "database_url", None),
            "role": getattr(args, "role", None),
            "worker_concurrency": getattr(args, "concurrency", None),
        }.items()
        if value is not None
    }
    return Settings(**overrides)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chatflow", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP + WebSocket server")
    serve.add_argument("--host", help="bind address (CHATFLOW_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (CHATFLOW_PORT, default 5050)")
    serve.add_argument(
        "--ws-port",
        type=int,
        help="second port for the same server's WebSockets, as the seed's clients expect "
        "(CHATFLOW_WS_PORT, default 5051; 0: off)",
    )
    serve.add_argument("--data-dir", type=Path, help="data directory (CHATFLOW_DATA_DIR)")
    serve.add_argument("--log-level", help="debug, info, warning... (CHATFLOW_LOG_LEVEL)")
    serve.add_argument("--database-url", help="SQLAlchemy async URL (CHATFLOW_DATABASE_URL)")
    serve.add_argument(
        "--role",
        choices=["all", "api"],
        help="all: HTTP, WebSockets and runs (default); api: HTTP and WebSockets, runs go to "
        "`chatflow worker` processes (CHATFLOW_ROLE; needs PostgreSQL and Redis)",
    )
    worker = commands.add_parser(
        "worker", help="execute runs from the PostgreSQL job queue (no HTTP)"
    )
    worker.add_argument(
        "--concurrency", type=int, help="runs at once (CHATFLOW_WORKER_CONCURRENCY)"
    )
    worker.add_argument("--data-dir", type=Path, help="data directory, shared with the API")
    worker.add_argument("--log-level", help="debug, info, warning... (CHATFLOW_LOG_LEVEL)")
    worker.add_argument("--database-url", help="PostgreSQL URL (CHATFLOW_DATABASE_URL)")
    db = commands.add_parser("db", help="database schema")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    up = db_commands.add_parser("upgrade", help="apply pending migrations")
    up.add_argument("--data-dir", type=Path)
    up.add_argument("--database-url")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = _settings(args)
    # uvicorn's level names, 'trace' included (the logging module does not know that one).
    setup_logging(LOG_LEVELS.get(settings.log_level, logging.INFO), settings.log_format)
    if args.command == "db":
        settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
        upgrade(settings.resolved_database_url)
        log.info("database at head: %s", settings.resolved_database_url)
        return 0
    if args.command == "worker":
        settings = settings.model_copy(update={"role": "worker"})
    problem = settings.role_problem()
    if problem is not None:
        log.error("%s", problem)
        return 2
    if args.command == "worker":
        return asyncio.run(_work(settings))
    try:
        keys = settings.resolved_api_keys()
    except (OSError, UnicodeDecodeError) as exc:
        log.error("cannot use CHATFLOW_API_KEYS_FILE %s: %s", settings.api_keys_file, _why(exc))
        return 2
    log.info(
        "chatflow serving on http://%s:%d (data: %s)",
        settings.host,
        settings.port,
        settings.resolved_data_dir,
    )
    if not keys:
        loopback = settings.host in {"127.0.0.1", "localhost", "::1"}
        log.warning(
            "no API keys configured (CHATFLOW_API_KEYS): no authentication; %s",
            "bound to loopback only"
            if loopback
            else f"anyone who can reach {settings.host} can use this server",
        )
    build_server(settings, freeze_gc=True).run()
    return 0


async def _work(settings: Settings) -> int:
    """``chatflow worker``: execute runs until SIGTERM or SIGINT, then stop within the grace."""
    rt = await start_runtime(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    log.info(
        "chatflow worker executing runs (%d at once; data: %s)",
        settings.worker_concurrency,
        settings.resolved_data_dir,
    )
    try:
        await stop.wait()
        log.info("stopping: runs get %.0f s to finish", settings.shutdown_grace_s)
    finally:
        await stop_runtime(rt)
    return 0


def _why(exc: OSError | UnicodeDecodeError) -> str:
    """What is wrong with the key file, without a byte of its contents."""
    if isinstance(exc, UnicodeDecodeError):
        line = exc.object[: exc.start].count(b"\n") + 1
        return f"line {line} is not UTF-8 text"
    return exc.strerror or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
