"""The seed report's two examples, end to end against a real server."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import httpx
import openpyxl
import pytest

from tests.support import (
    POSTAL_ROWS,
    LiveServer,
    create_chat,
    receive_until,
    seed_workflow,
    subscribe,
    upload,
    write_xlsx,
)

# The seed's flow on one process (SQLite) and on the scale-out configuration (PostgreSQL with
# runs on its job queue, and Redis).
pytestmark = pytest.mark.both_databases


def test_example_1_create_upload_download_identical_bytes(
    client: httpx.Client, tmp_path: Path
) -> None:
    source = write_xlsx(tmp_path / "data.xlsx", POSTAL_ROWS)
    chat_id = create_chat(client)

    response = upload(client, chat_id, source)
    assert response.status_code == 201, response.text
    (info,) = response.json()["data"]
    assert info["filename"] == "data.xlsx"
    assert info["version"] == 1
    assert info["size"] == source.stat().st_size
    assert info["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert info["sheets"] == ["Sheet1"]
    assert info["columns"] == ["name", "postal_code", "city"]
    assert info["row_count"] == 5
    assert info["download_url"] == (
        f"{client.base_url}/api/v1/chat/workflows/{chat_id}/files/data.xlsx?version=1"
    )

    download = client.get(f"/api/v1/chat/workflows/{chat_id}/files/data.xlsx")
    assert download.status_code == 200
    assert download.content == source.read_bytes()
    assert download.headers["content-type"] == (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    assert download.headers["content-disposition"] == 'attachment; filename="data.xlsx"'
    # The absolute URL handed out works as given.
    assert httpx.get(info["download_url"]).content == source.read_bytes()


def test_example_2_websocket_sees_the_run_and_the_output_is_deduplicated(
    server: LiveServer, client: httpx.Client, tmp_path: Path
) -> None:
    chat_id = create_chat(client)
    assert (
        upload(client, chat_id, write_xlsx(tmp_path / "data.xlsx", POSTAL_ROWS)).status_code == 201
    )

    with subscribe(f"{server.ws_url}/chat/{chat_id}") as ws:
        response = client.post(f"/api/v1/chat/workflows/{chat_id}/execute", json=seed_workflow())
        assert response.status_code == 202, response.text
        run_id = response.json()["data"]["run_id"]
        events = receive_until(ws, {"workflow_completed", "workflow_failed"})

    assert [e["type"] for e in events] == [
        "workflow_started",
        "step_started",
        "progress",
        "progress",
        "progress",
        "progress",
        "progress",
        "step_completed",
        "workflow_completed",
    ]
    assert [e["progress"] for e in events if e["type"] == "progress"] == [0, 25, 50, 75, 100]
    assert [e["message"] for e in events if e["type"] == "progress"] == [
        "Starting step execution",
        "Read 5 rows",
        "Processing column 'postal_code'",
        "Writing 3 rows",
        "Step completed successfully",
    ]
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    for event in events:
        assert event["chat_id"] == chat_id
        assert event["run_id"] == run_id
        assert event["timestamp"].endswith("Z")
        assert event["message"]

    (output,) = events[-1]["outputs"]
    assert output["filename"] == "data_extract-columns.xlsx"
    assert output["row_count"] == 3
    download = httpx.get(output["download_url"])
    assert download.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(download.content), read_only=True).active
    assert sheet is not None
    assert [list(row) for row in sheet.iter_rows(values_only=True)] == [
        ["postal_code"],
        ["01234"],
        ["98765"],
        ["00501"],
    ]

    run = client.get(f"/api/v1/chat/workflows/{chat_id}/runs/{run_id}").json()["data"]
    assert run["status"] == "completed"
    assert run["input"] == {"filename": "data.xlsx", "version": 1}
    assert [s["status"] for s in run["steps"]] == ["completed"]
    assert run["steps"][0]["result"] == {
        "rows_in": 5,
        "rows_out": 3,
        "columns": ["postal_code"],
    }
    assert [o["filename"] for o in run["outputs"]] == ["data_extract-columns.xlsx"]


def test_seed_python_client_verbatim_shape(
    server: LiveServer, client: httpx.Client, tmp_path: Path
) -> None:
    """The seed's subscriber reads data['type'] and data.get('message') of every frame."""
    chat_id = create_chat(client)
    upload(client, chat_id, write_xlsx(tmp_path / "data.xlsx", POSTAL_ROWS))
    with subscribe(f"{server.ws_url}/chat/{chat_id}") as ws:
        client.post(
            f"/api/v1/chat/workflows/{chat_id}/execute",
            content=json.dumps(seed_workflow()),
            headers={"Content-Type": "application/json"},
        )
        events = receive_until(ws, {"workflow_completed"})
    assert all(isinstance(e["type"], str) and isinstance(e["message"], str) for e in events)
