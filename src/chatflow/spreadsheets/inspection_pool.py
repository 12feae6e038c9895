"""Upload inspections, each in a child of its own forked from one fork server.

The fork server (``fork_server``) is started ahead of need, with the inspection imported; an
upload gets a fresh fork, which inspects one file and exits, so a crafted file that crashes a
parser, or leaves anything behind in memory, costs only that process.  ``slots`` inspections
run at a time; the rest wait.  A fork server that has died is replaced at the next upload.

``began`` comes from the child's CLOCK_MONOTONIC, which on Linux is the same clock as ours, so
``Inspection.waited_s`` is the time from the call to the child starting on the file: the wait
for a slot, for the fork, and at the first upload without a prestart, for the fork server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatflow.filenames import WORKBOOK_KINDS
from chatflow.spreadsheets.fork_server import Forked, ForkServer, ForkServerGone
from chatflow.spreadsheets.sandbox import (
    DEFAULT_MEMORY_MB,
    DEFAULT_TIMEOUT_S,
    InspectionRejected,
    inspection_argv,
)
from chatflow.spreadsheets.zip_parts import DEFAULT_MAX_CELLS, DEFAULT_MAX_UNCOMPRESSED_MB

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Inspection:
    """A file's inspection info and what it cost: waiting for a child, then the inspection."""

    info: dict[str, Any]
    waited_s: float
    took_s: float


class PoolClosed(Exception):
    """The pool was closed (the server is stopping): no new child is started."""


class InspectionPool:
    """One fork server; ``slots`` inspections at once, each in a child forked for it."""

    def __init__(
        self,
        *,
        slots: int,
        memory_mb: int = DEFAULT_MEMORY_MB,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self._slots = asyncio.Semaphore(slots)
        self.memory_mb = memory_mb
        self.timeout_s = timeout_s
        self._server: ForkServer | None = None
        self._starting = asyncio.Lock()
        self._closed = False

    async def prestart(self) -> None:
        """Start the fork server now rather than at the first upload."""
        await self._fork_server()

    async def inspect(
        self,
        path: Path,
        kind: str,
        *,
        max_cells: int = DEFAULT_MAX_CELLS,
        max_uncompressed_mb: int = DEFAULT_MAX_UNCOMPRESSED_MB,
        delimiter: str | None = None,
    ) -> Inspection:
        """Inspect one file in a child of its own; InspectionRejected says why it was refused."""
        if kind not in {*WORKBOOK_KINDS, "csv"}:
            raise InspectionRejected("unsupported_kind", f"Unsupported file kind '{kind}'.")
        argv = inspection_argv(
            path,
            kind,
            max_cells=max_cells,
            max_uncompressed_mb=max_uncompressed_mb,
            delimiter=delimiter,
        )
        asked = time.monotonic()
        async with self._slots:
            child = await self._fork()
            verdict = await child.run(argv, timeout_s=self.timeout_s)
        began = verdict.began if verdict.began is not None else asked
        return Inspection(verdict.info, max(0.0, began - asked), time.monotonic() - began)

    async def close(self) -> None:
        """End the fork server and every child, idle or busy."""
        self._closed = True
        async with self._starting:  # a start under way finishes, and is closed here
            if self._server is not None:
                await self._server.close()

    def pids(self) -> list[int]:
        """The fork server and the children alive now."""
        server = self._server
        if server is None or not server.alive:
            return []
        return [server.pid, *server.child_pids()]

    async def _fork(self) -> Forked:
        """A fresh child; a fork server found dead is replaced once."""
        try:
            return await (await self._fork_server()).fork()
        except ForkServerGone:
            log.warning("the inspection fork server had exited; starting another")
            return await (await self._fork_server()).fork()

    async def _fork_server(self) -> ForkServer:
        """The running fork server, started (again) if there is none."""
        async with self._starting:
            if self._closed:
                raise PoolClosed()
            if self._server is None or not self._server.alive:
                if self._server is not None:
                    await self._server.close()  # reap what is left of the old one
                self._server = await ForkServer.start(self.memory_mb)
            return self._server


async def inspect_once(
    path: Path,
    kind: str,
    *,
    memory_mb: int = DEFAULT_MEMORY_MB,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_cells: int = DEFAULT_MAX_CELLS,
    max_uncompressed_mb: int = DEFAULT_MAX_UNCOMPRESSED_MB,
    delimiter: str | None = None,
) -> dict[str, Any]:
    """Inspect one file with a fork server started for it alone."""
    pool = InspectionPool(slots=1, memory_mb=memory_mb, timeout_s=timeout_s)
    try:
        inspection = await pool.inspect(
            path,
            kind,
            max_cells=max_cells,
            max_uncompressed_mb=max_uncompressed_mb,
            delimiter=delimiter,
        )
    finally:
        with contextlib.suppress(Exception):
            await pool.close()
    return inspection.info
