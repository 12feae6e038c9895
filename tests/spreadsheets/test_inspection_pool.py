"""The inspection pool: a fork server started ahead of need, a fresh child per file, ended with
the server."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from chatflow.spreadsheets.inspection_pool import InspectionPool
from chatflow.spreadsheets.sandbox import InspectionRejected, package_root
from tests.fixtures_util import HOSTILE, make_csv


def _gone(pids: set[int]) -> bool:
    return all(
        not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie" for pid in pids
    )


async def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.01)


def _mapped(pid: int, library: str) -> bool:
    return any(library in (m.path or "") for m in psutil.Process(pid).memory_maps())


def test_the_fork_server_starts_ahead_with_its_libraries_and_forks_a_child_per_file(
    tmp_path: Path,
) -> None:
    csv = make_csv(tmp_path / "t.csv", "a,b\n1,x\n2,y\n")
    fifo = tmp_path / "never.csv"
    os.mkfifo(fifo)  # opening it blocks: that inspection stays busy, its child visible

    async def scenario() -> None:
        pool = InspectionPool(slots=2, timeout_s=60)
        try:
            await pool.prestart()
            (server,) = pool.pids()
            assert _mapped(server, "python_calamine")  # imported before any upload
            # Forking is safe only from a process with one thread: no polars in there.
            assert psutil.Process(server).num_threads() == 1
            first = await pool.inspect(csv, "csv")
            assert first.info == {"sheets": [], "columns": ["a", "b"], "row_count": 2}
            assert first.waited_s >= 0 and first.took_s > 0
            assert pool.pids() == [server]  # the child that read it is gone
            busy = asyncio.create_task(pool.inspect(fifo, "csv"))
            await _until(lambda: len(pool.pids()) == 2, "no child was forked")
            child = pool.pids()[1]
            assert psutil.Process(child).ppid() == server
            assert _mapped(child, "python_calamine")  # inherited, not imported again
            second = await pool.inspect(csv, "csv")  # the other slot, another child
            assert second.info == first.info
            assert pool.pids() == [server, child]
            busy.cancel()
            with pytest.raises(asyncio.CancelledError):
                await busy
            assert pool.pids() == [server] and _gone({child})
        finally:
            await pool.close()
        assert _gone({server})

    asyncio.run(scenario())


def test_a_crash_costs_only_its_own_process(tmp_path: Path) -> None:
    csv = make_csv(tmp_path / "t.csv", "a\n1\n")

    async def scenario() -> None:
        pool = InspectionPool(slots=2)
        try:
            await pool.prestart()
            # With the cell limit out of the way calamine tries to allocate 549 GB and aborts.
            with pytest.raises(InspectionRejected) as caught:
                await pool.inspect(HOSTILE / "corners_a1_xfd1048576.xlsx", "xlsx", max_cells=10**15)
            assert caught.value.code == "parser_crashed" and "SIGABRT" in caught.value.message
            server = pool.pids()
            assert len(server) == 1  # the fork server lives on...
            assert (await pool.inspect(csv, "csv")).info["row_count"] == 1  # ...and serves
            assert pool.pids() == server
        finally:
            await pool.close()

    asyncio.run(scenario())


def test_a_dead_fork_server_is_replaced_at_the_next_upload(tmp_path: Path) -> None:
    csv = make_csv(tmp_path / "t.csv", "a\n1\n")

    async def scenario() -> None:
        pool = InspectionPool(slots=1)
        try:
            await pool.prestart()
            (first,) = pool.pids()
            os.kill(first, signal.SIGKILL)  # an operator, or the OOM killer
            await _until(lambda: pool.pids() == [], "the death went unnoticed")
            assert (await pool.inspect(csv, "csv")).info["row_count"] == 1
            (second,) = pool.pids()
            assert second != first
        finally:
            await pool.close()

    asyncio.run(scenario())


def test_close_ends_idle_and_busy_children(tmp_path: Path) -> None:
    fifo = tmp_path / "never.csv"
    os.mkfifo(fifo)  # opening it blocks: the inspection stays busy until it is killed

    async def scenario() -> None:
        pool = InspectionPool(slots=2, timeout_s=60)
        await pool.prestart()
        busy = asyncio.create_task(pool.inspect(fifo, "csv"))
        await _until(lambda: len(pool.pids()) == 2, "no child was forked")  # server, busy child
        children = set(pool.pids())
        await pool.close()
        assert _gone(children)
        with pytest.raises(InspectionRejected):
            await busy  # killed under it: the file is refused, nothing hangs

    asyncio.run(scenario())


_SERVER = """
import asyncio, sys
from pathlib import Path
from chatflow.spreadsheets.inspection_pool import InspectionPool

async def main() -> None:
    pool = InspectionPool(slots=2, timeout_s=600)
    await pool.prestart()
    task = asyncio.create_task(pool.inspect(Path(sys.argv[1]), "csv"))
    while len(pool.pids()) < 2:
        await asyncio.sleep(0.05)
    print(" ".join(map(str, pool.pids())), flush=True)
    await task

asyncio.run(main())
"""


@pytest.mark.slow  # kills a process
def test_the_children_die_with_the_server(tmp_path: Path) -> None:
    fifo = tmp_path / "never.csv"
    os.mkfifo(fifo)
    env = {**os.environ, "PYTHONPATH": package_root()}
    server = subprocess.Popen(
        [sys.executable, "-c", _SERVER, str(fifo)], stdout=subprocess.PIPE, env=env, text=True
    )
    try:
        assert server.stdout is not None
        pids = {int(pid) for pid in server.stdout.readline().split()}
        assert len(pids) == 2  # the fork server and a child busy on the fifo
        os.kill(server.pid, signal.SIGKILL)
        server.wait(10)
        deadline = time.monotonic() + 10
        while not _gone(pids):
            assert time.monotonic() < deadline, "an inspection process outlived its server"
            time.sleep(0.05)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
