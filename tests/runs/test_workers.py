"""Worker processes: reads and writes leave the server's interpreter, and end with it."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import polars as pl
import psutil
import pytest
from openpyxl import load_workbook

from chatflow.failures import Cancelled, StepFailed
from chatflow.runs.step_io import read_head
from chatflow.runs.worker_pool import WorkerCrashed, WorkerError, WorkerPool
from chatflow.spreadsheets.writing import write_workbook
from tests.step_harness import StepHarness
from tests.support import create_chat, make_settings, run_server, seed_workflow, upload, write_xlsx

API = "/api/v1"


@pytest.fixture
def pool() -> Iterator[WorkerPool]:
    workers = WorkerPool(1)
    try:
        yield workers
    finally:
        workers.close()


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_table_written_and_read_back_through_a_worker_is_unchanged(
    pool: WorkerPool, tmp_path: Path
) -> None:
    table = pl.DataFrame({"code": ["007", "=1+1", None], "city": ["Köln", "Lyon", "Oslo"]})
    reports: list[float] = []
    pool.call(write_workbook, {"Data": table}, tmp_path / "out.xlsx", progress=reports.append)
    assert reports[-1] == 1.0
    back = pool.call(
        read_head, tmp_path / "out.xlsx", kind="xlsx", sheet=None, delimiter=None, rows=2
    )
    assert back.to_dicts() == [{"code": "007", "city": "Köln"}, {"code": "=1+1", "city": "Lyon"}]
    cells = [[c.value for c in row] for row in load_workbook(tmp_path / "out.xlsx").active.rows]
    assert (
        cells[2] == ["=1+1", "Lyon"]
        and load_workbook(tmp_path / "out.xlsx").active["A3"].data_type == "s"
    )
    assert pool.pids() and pool.pids() == [pool.pids()[0]]  # one worker, reused


def test_a_job_s_own_errors_come_back_as_they_were_and_the_worker_is_kept(
    pool: WorkerPool, tmp_path: Path
) -> None:
    (tmp_path / "notes.xlsx").write_text("not a workbook")
    with pytest.raises(StepFailed) as failed:
        pool.call(
            read_head, tmp_path / "notes.xlsx", kind="xlsx", sheet=None, delimiter=None, rows=None
        )
    assert failed.value.code == "not_a_spreadsheet"
    with pytest.raises(FileNotFoundError):
        pool.call(
            read_head, tmp_path / "none.csv", kind="csv", sheet=None, delimiter=None, rows=None
        )
    first = pool.pids()
    with pytest.raises(WorkerError, match="ValueError: invalid literal"):
        pool.call(int, "seven")
    assert pool.pids() == first


def test_a_cancel_during_a_write_stops_it_leaving_no_file(pool: WorkerPool, tmp_path: Path) -> None:
    # xlsxwriter reports as it writes, so the stop lands mid-write.  (The Rust engine writes a
    # small workbook in one call: a stop during it is seen at its last report, or, if it comes
    # after, the run's discard removes the finished file by the run's name prefix:
    # test_run_files.  A big one it writes in chunks: the next test.)
    table = pl.DataFrame({"n": [str(i) for i in range(200_000)]})
    seen: list[float] = []

    def progress(fraction: float) -> None:
        seen.append(fraction)
        if len(seen) == 2:
            raise Cancelled()

    dest = tmp_path / "out.xlsx"
    with pytest.raises(Cancelled):
        pool.call(write_workbook, {"S": table}, dest, progress=progress, engine="xlsxwriter")
    assert len(seen) == 2 and seen[-1] < 1.0
    assert list(tmp_path.iterdir()) == []  # neither the output nor its temp file
    worker = pool.pids()
    assert len(worker) == 1  # it stopped when asked, so it is kept
    assert pool.call(int, "7") == 7 and pool.pids() == worker


def test_a_cancel_during_a_chunked_rust_write_stops_it_between_chunks(
    pool: WorkerPool, tmp_path: Path
) -> None:
    table = pl.DataFrame({"n": range(100_000), "t": [str(i) for i in range(100_000)]})
    seen: list[float] = []

    def progress(fraction: float) -> None:
        seen.append(fraction)
        if len(seen) == 10:
            raise Cancelled()

    dest = tmp_path / "out.xlsx"
    with pytest.raises(Cancelled):
        pool.call(write_workbook, {"S": table}, dest, progress=progress, chunk_rows=1_000)
    assert seen == sorted(seen) and seen[-1] < 0.5
    assert list(tmp_path.iterdir()) == []
    worker = pool.pids()
    assert len(worker) == 1  # it stopped when asked, so it is kept
    assert pool.call(int, "7") == 7 and pool.pids() == worker


def test_a_job_that_ignores_the_stop_is_killed_and_replaced(pool: WorkerPool) -> None:
    started = time.monotonic()

    def interrupt() -> None:
        if time.monotonic() - started > 0.2:
            raise Cancelled()

    pool.call(int, "1")
    before = pool.pids()
    with pytest.raises(Cancelled):
        pool.call(time.sleep, 60, interrupt=interrupt)
    assert _gone(before[0])
    assert pool.call(int, "2") == 2
    assert pool.pids() != before


def test_a_worker_that_dies_fails_the_job_with_worker_crashed(pool: WorkerPool) -> None:
    with pytest.raises(WorkerCrashed, match="the worker process died"):
        pool.call(os.abort)
    assert pool.call(int, "3") == 3


def _worker_processes() -> list[psutil.Process]:
    """Step workers; not the sealed SQL workers (this test process has one if an excel/sql
    step test ran before in it)."""
    return [
        child
        for child in psutil.Process().children(recursive=True)
        if "chatflow.runs.worker_process" in " ".join(child.cmdline())
        and child.cmdline()[-1] != "sealed"
    ]


def test_runs_use_worker_processes_which_end_with_the_server(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", worker_processes=1)
    rows = [
        ["customer_id", "postal_code", "city"],
        ["001", "01234", "Lyon"],
        ["001", "01234", "Lyon"],
    ]
    source = write_xlsx(tmp_path / "in.xlsx", rows)
    with run_server(settings) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        chat_id = create_chat(client)
        upload(client, chat_id, source)
        outputs = []
        for _ in range(2):
            run = client.post(
                f"{API}/chat/workflows/{chat_id}/execute",
                params={"wait": "true"},
                json=seed_workflow(columns=["customer_id", "city"], remove_duplicates=True),
            ).json()["data"]
            assert run["status"] == "completed"
            outputs.append(client.get(run["outputs"][0]["download_url"]).content)
            workers = _worker_processes()
            assert len(workers) == 1  # the same worker both times
        result = tmp_path / "result.xlsx"
        result.write_bytes(outputs[1])
        cells = [[c.value for c in row] for row in load_workbook(result).active.rows]
        assert cells == [["customer_id", "city"], ["001", "Lyon"]]
    assert _gone(workers[0].pid)


def test_prestarted_workers_are_there_before_the_first_run(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", worker_processes=2, prestart_workers=True)
    with run_server(settings):
        workers = _worker_processes()
        assert len(workers) == 2
    assert all(_gone(worker.pid) for worker in workers)


def test_a_discarded_run_removes_outputs_its_worker_finished_after_the_stop(
    tmp_path: Path,
) -> None:
    """A worker that writes a sheet in one call can finish and rename its file after the run
    stopped waiting for it; the run's name prefix still finds the file, and its temp files."""
    harness = StepHarness(tmp_path, pl.DataFrame({"a": [1, 2]}))
    harness.files.output_prefix = "0123abcd_"
    written = harness.run("excel/extract-columns-to-file", {"columns": ["a"]})
    assert written.files and written.files[0].name.startswith("data")
    chat_dir = harness.store.chat_dir(harness.chat_id)
    recorded = {p.name for p in chat_dir.iterdir()}
    late = chat_dir / harness.store.new_storage_name(".xlsx", "0123abcd_")  # never folded back
    late.write_bytes(b"x")
    (chat_dir / f".{late.name}.tmp123.part").write_bytes(b"x")
    harness.files.discard_written()
    assert {p.name for p in chat_dir.iterdir()} == {
        name for name in recorded if not name.startswith("0123abcd_")
    }
    assert len(recorded) == 2  # the input and the step's output, which went too
