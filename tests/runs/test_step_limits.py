"""Steps run in worker processes that the server can cap and kill: the memory limit, the step
time limit and dry runs taking their turn in the chat's queue, all through a live server."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest

from chatflow.spreadsheets.writing import write_csv, write_workbook
from tests.support import LiveServer, create_chat, make_settings, run_server, seed_workflow, upload

API = "/api/v1"
SQL = "excel/sql"
# Two million characters for each row, each row's own: even the dry run's 1,000-row sample
# needs about 2 GB, far past a 700 MB cap, and nothing bounds it but the cap.
HUGE = "SELECT MAX(LENGTH(RPAD(CAST(x AS VARCHAR), 2000000, 'a'))) AS n FROM input"
WORKER_MARK = b"worker_process import serve"


def _sql(query: str, **more: Any) -> dict[str, Any]:
    return {"steps": [{"operation": SQL, "arguments": {"query": query, **more}}]}


def _worker_pids() -> set[int]:
    """Live step worker processes of this test process's servers (its direct children)."""
    pids = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                command = handle.read()
            with open(f"/proc/{entry}/stat", "rb") as handle:
                state, parent = handle.read().rsplit(b")", 1)[1].split()[:2]
        except OSError:
            continue
        step_worker = WORKER_MARK in command and not command.endswith(b"\0sealed\0")
        if step_worker and state != b"Z" and int(parent) == os.getpid():
            pids.add(int(entry))
    return pids


def _run(client: httpx.Client, chat_id: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(
        f"{API}/chat/workflows/{chat_id}/execute", params={"wait": "true"}, json=body
    )
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()["data"]
    return run


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data = tmp_path_factory.mktemp("capped")
    with run_server(make_settings(data / "data", step_memory_mb=700, worker_processes=1)) as live:
        yield live


def _numbers_chat(client: httpx.Client, tmp: Path, rows: int) -> str:
    chat_id = create_chat(client)
    path = tmp / "numbers.csv"
    write_csv(pl.DataFrame({"x": list(range(rows))}), path)
    assert upload(client, chat_id, path).status_code == 201
    return chat_id


@pytest.mark.slow  # kill or restart
def test_a_step_past_its_memory_cap_fails_alone(capped: LiveServer, tmp_path: Path) -> None:
    with httpx.Client(base_url=capped.url, timeout=60) as client:
        chat_id = _numbers_chat(client, tmp_path, 30_000)
        dry = client.post(f"{API}/chat/workflows/{chat_id}/execute?dry_run=true", json=_sql(HUGE))
        assert dry.status_code == 422, dry.text
        assert dry.json()["error"]["code"] == "resource_limit", dry.text
        assert dry.json()["error"]["details"]["memory_mb"] == 700

        run = _run(client, chat_id, _sql(HUGE))
        assert run["status"] == "failed"
        assert run["error"]["code"] == "resource_limit"
        assert "CHATFLOW_STEP_MEMORY_MB" in run["error"]["message"]
        assert run["outputs"] == []

        # The server and the next run go on: same chat, an ordinary query.
        assert client.get(f"{API}/health").status_code == 200
        ok = _run(client, chat_id, _sql("SELECT COUNT(*) AS n, MAX(x) AS top FROM input"))
        assert ok["status"] == "completed", ok["error"]
        assert ok["steps"][0]["result"]["rows_out"] == 1


def test_a_dry_run_waits_for_the_chats_running_run(capped: LiveServer, tmp_path: Path) -> None:
    with httpx.Client(base_url=capped.url, timeout=60) as client:
        chat_id = _numbers_chat(client, tmp_path, 30_000)
        # The run fails at its memory cap after a moment; the dry run is submitted behind it.
        queued = client.post(f"{API}/chat/workflows/{chat_id}/execute", json=_sql(HUGE))
        assert queued.status_code == 202
        dry = client.post(
            f"{API}/chat/workflows/{chat_id}/execute?dry_run=true",
            json=_sql("SELECT x FROM input ORDER BY x DESC LIMIT 2"),
        )
        assert dry.status_code == 200, dry.text
        run = client.get(queued.json()["data"]["status_url"]).json()["data"]
        assert run["status"] == "failed", run  # it had finished before the dry run started
        (step,) = dry.json()["data"]["steps"]
        assert step["rows"] == [[999], [998]]  # the dry run reads a 1,000-row sample
        assert step["types"] == ["integer"]


@pytest.mark.slow  # kill or restart
def test_the_step_time_limit_kills_the_worker_and_frees_its_slot(tmp_path: Path) -> None:
    """A read that never reaches a progress report is stopped by killing its process."""
    settings = make_settings(
        tmp_path / "data",
        step_timeout_s=1.0,
        worker_processes=2,
        step_threads=1,  # one step thread: the next run completes only if the slot was freed
        prestart_workers=True,
    )
    rows = 800_000
    big = tmp_path / "big.xlsx"
    # A date before 1904 sends the whole sheet to the cell-by-cell read (reading_columns), which
    # takes several seconds for 2.4M cells without a progress report.
    early = [dt.date(1900, 1, 1)] + [dt.date(2024, 1, 1)] * (rows - 1)
    table = pl.DataFrame({"a": range(rows), "b": [f"t{i}" for i in range(rows)], "c": early})
    write_workbook({"Sheet1": table}, big, engine="rustpy-xlsxwriter")
    small = tmp_path / "small.csv"
    write_csv(pl.DataFrame({"x": [3, 1, 2]}), small)
    others = _worker_pids()  # other servers' workers, e.g. the module's capped server
    with run_server(settings) as live, httpx.Client(base_url=live.url, timeout=120) as client:
        chat_id = create_chat(client)
        assert upload(client, chat_id, big).status_code == 201
        other = create_chat(client)
        assert upload(client, other, small).status_code == 201
        before = _worker_pids() - others
        assert len(before) == 2
        started = time.monotonic()
        run = _run(client, chat_id, seed_workflow(columns=["a"]))
        took = time.monotonic() - started
        assert run["status"] == "failed"
        assert run["error"]["code"] == "timeout"
        assert "CHATFLOW_STEP_TIMEOUT_S" in run["error"]["message"]
        # 1 s limit + 2 s for the job to notice its stop request, then the kill: the run did
        # not wait for the read (several seconds) to end.
        assert took < 6, took
        assert len(before & _worker_pids()) == 1  # the worker that ran it is gone

        ok = _run(client, other, seed_workflow(columns=["x"], output="x.csv"))
        assert ok["status"] == "completed", ok["error"]
        (output,) = ok["outputs"]
        assert httpx.get(output["download_url"]).text.splitlines() == ["x", "3", "1", "2"]


def test_a_file_gone_from_disk_is_an_io_error_not_a_500(capped: LiveServer, tmp_path: Path) -> None:
    with httpx.Client(base_url=capped.url, timeout=60) as client:
        chat_id = _numbers_chat(client, tmp_path, 10)
        for stored in (capped.settings.files_dir / chat_id).iterdir():
            stored.unlink()  # behind the server's back: a failed disk, an operator's mistake
        body = _sql("SELECT SUM(x) AS s FROM input")
        dry = client.post(f"{API}/chat/workflows/{chat_id}/execute?dry_run=true", json=body)
        assert dry.status_code == 422, dry.text
        assert dry.json()["error"]["code"] == "io_error"
        assert "could not read or write a file" in dry.json()["error"]["message"]
        run = _run(client, chat_id, body)
        assert run["status"] == "failed"
        assert run["error"]["code"] == "io_error"
        assert client.get(f"{API}/health").status_code == 200
