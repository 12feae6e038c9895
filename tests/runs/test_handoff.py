"""The table a step hands on lies in a temp file of the chat, read by the next step's worker:
it never crosses the server, and no hand-off file outlives its run."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
from openpyxl import load_workbook

from chatflow.operations import load_all
from chatflow.operations.registry import StepOutput
from chatflow.runs.step_io import RunFiles
from chatflow.runs.step_jobs import run_step_remotely, write_final_remotely
from chatflow.runs.worker_pool import WorkerPool
from tests.step_harness import StepHarness
from tests.support import create_chat, make_settings, run_server, upload, write_xlsx

API = "/api/v1"
ORDERS = pl.DataFrame(
    {
        "code": ["007", "010", "003"],
        "amount": [120, 80, 300],
        "day": [dt.date(2024, 1, 2), dt.date(2024, 1, 3), dt.date(2024, 1, 4)],
    }
)


@pytest.fixture
def pool() -> Iterator[WorkerPool]:
    workers = WorkerPool(1)
    try:
        yield workers
    finally:
        workers.close()


def _step(files: RunFiles, operation: str, arguments: dict[str, Any]) -> StepOutput:
    found = load_all().get(operation)
    assert found is not None
    output, _ = run_step_remotely(
        files, found, arguments, report=lambda *_: None, check_cancelled=lambda: None
    )
    return output


def _temps(harness: StepHarness) -> set[str]:
    return {p.name for p in harness.store.chat_dir(harness.chat_id).iterdir() if p.name[0] == "."}


def test_steps_hand_their_table_on_through_a_file_the_server_never_reads(
    pool: WorkerPool, tmp_path: Path
) -> None:
    harness = StepHarness(tmp_path, ORDERS)
    files = harness.files
    files.processes, files.output_prefix = pool, "feed_"
    filtered = _step(
        files, "excel/filter-rows", {"conditions": [{"column": "amount", "op": "ge", "value": 100}]}
    )
    first = files.handed
    assert filtered.table is None and files.current is None  # nothing came back but a path
    assert first is not None and first.name.startswith(".feed_") and first.suffix == ".part"
    assert _temps(harness) == {first.name}
    handed = pl.read_ipc(first)
    assert handed.schema == ORDERS.schema  # text stays text, numbers and dates keep their type
    assert handed.rows() == [("007", 120, dt.date(2024, 1, 2)), ("003", 300, dt.date(2024, 1, 4))]

    _step(files, "excel/inspect", {})  # looks only: the same file goes on, not a copy
    assert files.handed == first and _temps(harness) == {first.name}

    _step(files, "excel/sort", {"by": [{"column": "amount", "descending": True}]})
    assert files.handed is not None and files.handed != first
    assert not first.exists() and _temps(harness) == {files.handed.name}  # the old one went

    write_final_remotely(files, "excel/sort", check_cancelled=lambda: None)
    (written,) = files.written
    cells = [[c.value for c in row] for row in load_workbook(written.path).active.rows]
    assert cells[1:] == [
        ["003", 300, dt.datetime(2024, 1, 4)],
        ["007", 120, dt.datetime(2024, 1, 2)],
    ]
    files.release()
    assert _temps(harness) == set() and files.handed is None
    assert written.path.exists()  # release leaves the outputs


def test_no_hand_off_file_outlives_a_run_however_it_ends(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", worker_processes=1)
    source = write_xlsx(tmp_path / "in.xlsx", [["code", "amount"], ["007", 5], ["010", 7]])
    two_steps = [
        {
            "operation": "excel/filter-rows",
            "arguments": {"conditions": [{"column": "amount", "op": "ge", "value": 6}]},
        },
        {"operation": "excel/sort", "arguments": {"by": [{"column": "code"}]}},
    ]
    failing = [two_steps[0], {"operation": "excel/sort", "arguments": {"by": [{"column": "nope"}]}}]
    with run_server(settings) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        chat_id = create_chat(client)
        upload(client, chat_id, source)
        chat_dir = settings.files_dir / chat_id
        url = f"{API}/chat/workflows/{chat_id}"
        done = client.post(f"{url}/execute", params={"wait": "true"}, json={"steps": two_steps})
        assert done.json()["data"]["status"] == "completed"
        failed = client.post(f"{url}/execute", params={"wait": "true"}, json={"steps": failing})
        assert failed.json()["data"]["status"] == "failed"
        preview = client.post(
            f"{url}/execute", params={"dry_run": "true"}, json={"steps": two_steps}
        )
        assert preview.status_code == 200
        assert preview.json()["data"]["steps"][-1]["rows"] == [["010", 7]]
        names = [p.name for p in chat_dir.iterdir()]
        assert [n for n in names if n.startswith(".")] == []
        assert len(names) == 2  # the upload and the completed run's output
