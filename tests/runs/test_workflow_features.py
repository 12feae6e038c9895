"""Dry runs, saved workflows, cancellation, and runs that leave nothing behind."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import polars as pl
import pytest

from tests.support import (
    POSTAL_ROWS,
    LiveServer,
    create_chat,
    make_settings,
    run_server,
    seed_workflow,
    subscribe,
    upload,
    write_xlsx,
)

# Dry runs and saved workflows also on the scale-out configuration (the cancel test has a
# server of its own; the cluster tests cancel across processes).
pytestmark = pytest.mark.both_databases

API = "/api/v1"


def test_dry_run_checks_against_the_real_columns_and_writes_nothing(
    server: LiveServer, client: httpx.Client, tmp_path: Path
) -> None:
    chat_id = create_chat(client)
    upload(client, chat_id, write_xlsx(tmp_path / "data.xlsx", POSTAL_ROWS))
    before = sorted(p.name for p in (server.settings.files_dir / chat_id).iterdir())
    url = f"{API}/chat/workflows/{chat_id}/execute"
    response = client.post(url, params={"dry_run": "true"}, json=seed_workflow())
    assert response.status_code == 200, response.text
    checked = response.json()["data"]
    assert checked["input"] == {"filename": "data.xlsx", "version": 1}
    (step,) = checked["steps"]
    assert step["columns"] == ["postal_code"]
    assert step["row_count"] == 3
    assert step["rows"] == [["01234"], ["98765"], ["00501"]]
    assert step["files"] == ["data_extract-columns.xlsx"]

    failing = client.post(
        url,
        params={"dry_run": "true"},
        json={
            "steps": [
                seed_workflow(columns=["postal_code", "city"])["steps"][0],
                seed_workflow(columns=["name"])["steps"][0],
            ]
        },
    )
    assert failing.status_code == 422
    error = failing.json()["error"]
    assert error["code"] == "column_not_found"
    assert error["details"]["step_index"] == 1
    assert error["message"].startswith("steps[1] (excel/extract-columns-to-file): Column 'name'")
    assert "available columns: postal_code, city" in error["message"]

    assert client.get(f"{API}/chat/workflows/{chat_id}/runs").json()["data"] == []
    assert sorted(p.name for p in (server.settings.files_dir / chat_id).iterdir()) == before
    files = client.get(f"{API}/chat/workflows/{chat_id}/files").json()["data"]
    assert [f["filename"] for f in files] == ["data.xlsx"]


@pytest.mark.own_server  # it lists every saved workflow
def test_save_a_run_as_a_workflow_and_rerun_it_in_another_chat(
    client: httpx.Client, tmp_path: Path
) -> None:
    first = create_chat(client)
    upload(client, first, write_xlsx(tmp_path / "data.xlsx", POSTAL_ROWS))
    run = client.post(
        f"{API}/chat/workflows/{first}/execute", params={"wait": "true"}, json=seed_workflow()
    ).json()["data"]
    saved = client.post(
        f"{API}/chat/workflows/{first}/workflows",
        json={"name": "postal codes", "run_id": run["run_id"], "description": "unique codes"},
    )
    assert saved.status_code == 201, saved.text
    assert saved.json()["data"]["steps"] == [
        {
            "operation": "excel/extract-columns-to-file",
            "arguments": {
                "columns": ["postal_code"],
                "remove_duplicates": True,
                "sheet": None,
                "output": None,
            },
        }
    ]
    again = client.post(
        f"{API}/chat/workflows/{first}/workflows",
        json={"name": "postal codes", "run_id": run["run_id"]},
    )
    assert again.status_code == 409 and again.json()["error"]["code"] == "workflow_exists"
    listed = client.get(f"{API}/workflows").json()["data"]
    assert [w["name"] for w in listed] == ["postal codes"]

    second = create_chat(client)
    other = tmp_path / "other.csv"
    other.write_text("postal_code,name\n10115,a\n10115,b\n01067,c\n", encoding="utf-8")
    upload(client, second, other)
    rerun = client.post(
        f"{API}/chat/workflows/{second}/execute",
        params={"wait": "true"},
        json={"workflow": "postal codes", "input": "other.csv"},
    ).json()["data"]
    assert rerun["status"] == "completed"
    assert rerun["input"] == {"filename": "other.csv", "version": 1}
    (output,) = rerun["outputs"]
    assert output["filename"] == "other_extract-columns.xlsx"
    assert output["row_count"] == 2

    missing = client.post(f"{API}/chat/workflows/{second}/execute", json={"workflow": "nope"})
    assert missing.status_code == 422 and missing.json()["error"]["code"] == "workflow_not_found"
    both = client.post(
        f"{API}/chat/workflows/{second}/execute", json={"workflow": "x", **seed_workflow()}
    )
    assert both.status_code == 422
    assert client.delete(f"{API}/workflows/postal codes").status_code == 204
    assert client.get(f"{API}/workflows/postal codes").status_code == 404


def test_cancel_a_long_step_stops_it_and_leaves_no_output(tmp_path: Path) -> None:
    # The xlsxwriter engine writes row by row and can be stopped mid-write; the Rust engine
    # writes 400,000 rows in a fraction of a second, too short a window to cancel into reliably.
    settings = make_settings(tmp_path / "data", xlsx_writer="xlsxwriter")
    with run_server(settings) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        _cancel_while_writing(server, client, tmp_path)


def _cancel_while_writing(server: LiveServer, client: httpx.Client, tmp_path: Path) -> None:
    chat_id = create_chat(client)
    big = tmp_path / "big.csv"
    pl.DataFrame({"code": [f"{i:07d}" for i in range(400_000)]}).write_csv(big)
    upload(client, chat_id, big)
    with subscribe(f"{server.ws_url}/chat/{chat_id}") as ws:
        run_id = client.post(
            f"{API}/chat/workflows/{chat_id}/execute", json=seed_workflow(columns=["code"])
        ).json()["data"]["run_id"]
        queued = client.post(
            f"{API}/chat/workflows/{chat_id}/execute", json=seed_workflow(columns=["code"])
        ).json()["data"]["run_id"]
        while True:  # wait until the first run is writing its output
            event = json.loads(ws.recv(timeout=30))
            if event["type"] == "progress" and event["progress"] > 75:
                break
        cancelled_queued = client.post(f"{API}/chat/workflows/{chat_id}/runs/{queued}/cancel")
        assert cancelled_queued.status_code == 202
        assert cancelled_queued.json()["data"]["status"] == "cancelled"
        response = client.post(f"{API}/chat/workflows/{chat_id}/runs/{run_id}/cancel")
        assert response.status_code == 202
        events, ended = [], []
        while len(ended) < 2:
            event = json.loads(ws.recv(timeout=10))
            events.append(event)
            if event["type"] == "workflow_cancelled":
                ended.append(event["run_id"])
    assert sorted(ended) == sorted([run_id, queued])
    assert "workflow_completed" not in [e["type"] for e in events]
    for rid in (run_id, queued):
        run = client.get(f"{API}/chat/workflows/{chat_id}/runs/{rid}").json()["data"]
        assert run["status"] == "cancelled"
        assert run["outputs"] == []
    files = client.get(f"{API}/chat/workflows/{chat_id}/files").json()["data"]
    assert [f["filename"] for f in files] == ["big.csv"]
    on_disk = [p.name for p in (server.settings.files_dir / chat_id).iterdir()]
    assert len(on_disk) == 1, on_disk  # the upload; no partial or temp output
    again = client.post(f"{API}/chat/workflows/{chat_id}/runs/{run_id}/cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "run_finished"
