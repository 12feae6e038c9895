"""Upload inspections in child processes started ahead of need, one upload per process.

Starting a child costs about 0.4 s of CPU, nearly all of it importing polars and fastexcel.
The pool keeps ``spares`` children that have done that already, blocked on their stdin; an
upload takes one, and a replacement is started at once.  A child inspects one file and exits,
so a crafted file that crashes a parser, or leaves anything behind in memory, costs only that
process.  ``slots`` inspections run at a time; the rest wait.

``began`` comes from the child's CLOCK_MONOTONIC, which on Linux is the same clock as ours, so
``Inspection.waited_s`` is the time from the call to the child starting on the file: the wait
for a slot and, without a spare, for an interpreter.
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
from chatflow.spreadsheets.sandbox import (
    DEFAULT_MEMORY_MB,
    DEFAULT_TIMEOUT_S,
    InspectionRejected,
    inspection_argv,
    run_child,
    start_child,
    stop_child,
)
from chatflow.spreadsheets.zip_parts import DEFAULT_MAX_CELLS, DEFAULT_MAX_UNCOMPRESSED_MB

log = logging.getLogger(__name__)

Child = asyncio.subprocess.Process


@dataclass(frozen=True)
class Inspection:
    """A file's inspection info and what it cost: waiting for a child, then the inspection."""

    info: dict[str, Any]
    waited_s: float
    took_s: float


class PoolClosed(Exception):
    """The pool was closed (the server is stopping): no new child is started."""


class InspectionPool:
    """Inspection children: ``spares`` kept started, ``slots`` running at once."""

    def __init__(
        self,
        *,
        slots: int,
        spares: int,
        memory_mb: int = DEFAULT_MEMORY_MB,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self._slots = asyncio.Semaphore(slots)
        self._want = spares
        self.memory_mb = memory_mb
        self.timeout_s = timeout_s
        self._spares: list[Child] = []
        self._busy: set[Child] = set()
        self._starting: set[asyncio.Task[None]] = set()
        self._closed = False

    async def prestart(self) -> None:
        """Start the spares now rather than at the first upload."""
        self._replenish()
        await asyncio.gather(*self._starting)

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
            child = await self._take()
            self._replenish()
            self._busy.add(child)
            try:
                verdict = await run_child(child, argv, timeout_s=self.timeout_s)
            finally:
                self._busy.discard(child)
        began = verdict.began if verdict.began is not None else asked
        return Inspection(verdict.info, max(0.0, began - asked), time.monotonic() - began)

    async def close(self) -> None:
        """Stop starting children and end every one, idle or busy."""
        self._closed = True
        # Not cancelled: a start takes milliseconds, and one cancelled half-way could leave
        # a child nobody knows of.  Each sees _closed and stops its child.
        await asyncio.gather(*self._starting, return_exceptions=True)
        children, self._spares = [*self._spares, *self._busy], []
        await asyncio.gather(*(stop_child(child) for child in children))

    def pids(self) -> list[int]:
        """The children alive now, spares and busy ones."""
        return [c.pid for c in (*self._spares, *self._busy) if c.returncode is None]

    async def _take(self) -> Child:
        """A spare that is still alive, or a child started now."""
        while self._spares:
            child = self._spares.pop(0)
            if child.returncode is None:
                return child
            await stop_child(child)  # died waiting (the OOM killer, an operator): reap it
        if self._closed:
            raise PoolClosed()
        return await start_child(self.memory_mb)

    def _replenish(self) -> None:
        """Start children in the background until ``spares`` are kept."""
        while not self._closed and len(self._spares) + len(self._starting) < self._want:
            task = asyncio.create_task(self._start_spare())
            self._starting.add(task)
            task.add_done_callback(self._starting.discard)

    async def _start_spare(self) -> None:
        try:
            child = await start_child(self.memory_mb)
        except OSError as exc:  # out of processes or memory: the next upload starts its own
            log.warning("could not start a spare inspection process: %s", exc)
            return
        if self._closed:
            await stop_child(child)
        else:
            self._spares.append(child)


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
    """Inspect one file in a child started for it alone (no pool, no spares)."""
    pool = InspectionPool(slots=1, spares=0, memory_mb=memory_mb, timeout_s=timeout_s)
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
