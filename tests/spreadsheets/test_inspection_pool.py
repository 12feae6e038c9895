"""The inspection pool: children started ahead of need, one file each, ended with the server."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
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


async def _until_imported(pool: InspectionPool) -> None:
    """Wait until every spare has loaded calamine (its shared library is mapped)."""
    deadline = time.monotonic() + 60
    while not all(_mapped(pid, "python_calamine") for pid in pool.pids()):
        assert time.monotonic() < deadline, "the spares never finished importing"
        await asyncio.sleep(0.05)


def _mapped(pid: int, library: str) -> bool:
    return any(library in (m.path or "") for m in psutil.Process(pid).memory_maps())


def test_spares_are_started_ahead_with_their_libraries_and_serve_one_file_each(
    tmp_path: Path,
) -> None:
    csv = make_csv(tmp_path / "t.csv", "a,b\n1,x\n2,y\n")

    async def scenario() -> None:
        pool = InspectionPool(slots=2, spares=2)
        try:
            await pool.prestart()
            spares = set(pool.pids())
            assert len(spares) == 2
            await _until_imported(pool)
            first = await pool.inspect(csv, "csv")
            assert first.info == {"sheets": [], "columns": ["a", "b"], "row_count": 2}
            assert first.waited_s >= 0 and first.took_s > 0
            used = spares - set(pool.pids())
            assert len(used) == 1 and _gone(used)  # one file, then the process is gone...
            assert len(pool.pids()) == 2  # ...and a replacement keeps two spares
            second = await pool.inspect(csv, "csv")
            assert second.info == first.info
            assert len(spares - set(pool.pids())) == 2  # the other prestarted one served it
        finally:
            await pool.close()
        assert _gone(spares)

    asyncio.run(scenario())


def test_a_crash_costs_only_its_own_process(tmp_path: Path) -> None:
    csv = make_csv(tmp_path / "t.csv", "a\n1\n")

    async def scenario() -> None:
        pool = InspectionPool(slots=2, spares=2)
        try:
            await pool.prestart()
            spares = set(pool.pids())
            # With the cell limit out of the way calamine tries to allocate 549 GB and aborts.
            with pytest.raises(InspectionRejected) as caught:
                await pool.inspect(HOSTILE / "corners_a1_xfd1048576.xlsx", "xlsx", max_cells=10**15)
            assert caught.value.code == "parser_crashed"
            assert len(spares & set(pool.pids())) == 1  # the other spare is untouched
            assert (await pool.inspect(csv, "csv")).info["row_count"] == 1
        finally:
            await pool.close()

    asyncio.run(scenario())


def test_close_ends_idle_and_busy_children(tmp_path: Path) -> None:
    fifo = tmp_path / "never.csv"
    os.mkfifo(fifo)  # opening it blocks: the inspection stays busy until it is killed

    async def scenario() -> None:
        pool = InspectionPool(slots=2, spares=1, timeout_s=60)
        await pool.prestart()
        busy = asyncio.create_task(pool.inspect(fifo, "csv"))
        deadline = time.monotonic() + 30
        while len(pool.pids()) < 2:  # the busy one and its replacement
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
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
    pool = InspectionPool(slots=2, spares=2, timeout_s=600)
    await pool.prestart()
    task = asyncio.create_task(pool.inspect(Path(sys.argv[1]), "csv"))
    while len(pool.pids()) < 3:
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
        assert len(pids) == 3  # two idle spares and one busy on the fifo
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
