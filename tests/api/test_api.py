"""The HTTP API: chats, files, versions, transcript, catalogue and docs."""

from __future__ import annotations

import gc
import io
from pathlib import Path

import httpx
import openpyxl
import pytest

from tests.support import (
    POSTAL_ROWS,
    LiveServer,
    create_chat,
    make_settings,
    run_server,
    seed_workflow,
    upload,
    write_xlsx,
)

API = "/api/v1"

# The core flows hold on both databases (tests/conftest.py).
pytestmark = pytest.mark.both_databases


@pytest.mark.own_server  # its counters are the whole server's
def test_health_reports_database_websocket_and_counters(client: httpx.Client) -> None:
    response = client.get(f"{API}/health")
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["status"] == "ok"
    assert data["database"] == "ok"
    assert data["websocket"] == "running"
    assert (
        data["websocket_url"]
        == f"ws://{client.base_url.host}:{client.base_url.port}/chat/{{chat_id}}"
    )
    # Test servers run without the seed's second port (tests/e2e/test_seed_ws_port.py has it on).
    assert data["websocket_seed_url"] is None
    assert data["active_runs"] == 0
    assert data["subscribers"] == 0
    assert data["version"] == "0.1.0"


@pytest.mark.own_server  # it lists every chat
def test_chats_create_list_paginate_show_delete(
    server: LiveServer, client: httpx.Client, tmp_path: Path
) -> None:
    created = client.post(f"{API}/chat/workflows", json={"title": "Q3 report"})
    assert created.status_code == 201
    first = created.json()["data"]
    assert first["title"] == "Q3 report"
    assert first["websocket_url"] == f"{server.ws_url}/chat/{first['chat_id']}"
    others = [create_chat(client) for _ in range(4)]

    page1 = client.get(f"{API}/chat/workflows", params={"limit": 2}).json()["data"]
    page2 = client.get(
        f"{API}/chat/workflows", params={"limit": 2, "cursor": page1["next_cursor"]}
    ).json()["data"]
    page3 = client.get(
        f"{API}/chat/workflows", params={"limit": 2, "cursor": page2["next_cursor"]}
    ).json()["data"]
    listed = [c["chat_id"] for c in page1["items"] + page2["items"] + page3["items"]]
    assert listed == list(reversed([first["chat_id"], *others]))
    assert page3["next_cursor"] is None

    chat_id = others[0]
    upload(client, chat_id, write_xlsx(tmp_path / "data.xlsx", POSTAL_ROWS))
    client.post(
        f"{API}/chat/workflows/{chat_id}/execute", params={"wait": "true"}, json=seed_workflow()
    )
    detail = client.get(f"{API}/chat/workflows/{chat_id}").json()["data"]
    assert [f["filename"] for f in detail["files"]] == ["data.xlsx", "data_extract-columns.xlsx"]
    assert [r["status"] for r in detail["runs"]] == ["completed"]

    chat_dir = server.settings.files_dir / chat_id
    assert len(list(chat_dir.iterdir())) == 2
    assert client.delete(f"{API}/chat/workflows/{chat_id}").status_code == 204
    assert client.get(f"{API}/chat/workflows/{chat_id}").status_code == 404
    assert client.get(f"{API}/chat/workflows/{chat_id}/events").status_code == 404
    assert not chat_dir.exists()
    assert client.delete(f"{API}/chat/workflows/{chat_id}").status_code == 404


def test_uploads_keep_versions_and_several_parts_per_request(
    client: httpx.Client, tmp_path: Path
) -> None:
    chat_id = create_chat(client)
    v1 = write_xlsx(tmp_path / "v1.xlsx", POSTAL_ROWS)
    v2 = write_xlsx(tmp_path / "v2.xlsx", [["postal_code"], ["11111"]])
    csv = tmp_path / "people.csv"
    csv.write_bytes(b"id,name\n007,Bond\n")
    with v1.open("rb") as a, csv.open("rb") as b:
        response = client.post(
            f"{API}/chat/workflows/{chat_id}/upload",
            files=[("file", ("data.xlsx", a)), ("file", ("people.csv", b))],
        )
    assert response.status_code == 201, response.text
    infos = response.json()["data"]
    assert [(i["filename"], i["version"]) for i in infos] == [("data.xlsx", 1), ("people.csv", 1)]
    assert infos[1]["columns"] == ["id", "name"]
    assert infos[1]["row_count"] == 1
    assert infos[1]["media_type"] == "text/csv"

    again = upload(client, chat_id, v2, name="data.xlsx").json()["data"][0]
    assert again["version"] == 2
    files_url = f"{API}/chat/workflows/{chat_id}/files"
    assert client.get(f"{files_url}/data.xlsx").content == v2.read_bytes()
    assert client.get(f"{files_url}/data.xlsx", params={"version": 1}).content == v1.read_bytes()
    assert client.get(f"{files_url}/data.xlsx", params={"version": 3}).status_code == 404

    # A run records the version it read: the latest upload is people.csv unless told otherwise.
    run = client.post(
        f"{API}/chat/workflows/{chat_id}/execute",
        params={"wait": "true"},
        json={**seed_workflow(), "input": "data.xlsx"},
    ).json()["data"]
    assert run["input"] == {"filename": "data.xlsx", "version": 2}
    output = client.get(run["outputs"][0]["download_url"])
    rows = list(
        openpyxl.load_workbook(io.BytesIO(output.content)).active.iter_rows(values_only=True)
    )  # type: ignore[union-attr]
    assert rows == [("postal_code",), ("11111",)]

    listing = client.get(files_url).json()["data"]
    assert [(f["filename"], f["version"], f["source"]) for f in listing] == [
        ("data.xlsx", 1, "upload"),
        ("data.xlsx", 2, "upload"),
        ("data_extract-columns.xlsx", 1, "output"),
        ("people.csv", 1, "upload"),
    ]
    assert listing[2]["run_id"] == run["run_id"]

    deleted = client.delete(f"{files_url}/data.xlsx", params={"version": 1})
    assert deleted.json()["data"] == {"deleted": 1}
    assert client.get(f"{files_url}/data.xlsx", params={"version": 1}).status_code == 404
    assert client.get(f"{files_url}/data.xlsx").content == v2.read_bytes()
    assert client.delete(f"{files_url}/data.xlsx").json()["data"] == {"deleted": 1}
    assert client.get(f"{files_url}/data.xlsx").status_code == 404


def test_transcript_has_user_and_system_entries(client: httpx.Client, tmp_path: Path) -> None:
    chat_id = create_chat(client)
    url = f"{API}/chat/workflows/{chat_id}/messages"
    posted = client.post(url, json={"text": "extract the postal codes please"})
    assert posted.status_code == 201
    assert posted.json()["data"]["role"] == "user"
    upload(client, chat_id, write_xlsx(tmp_path / "data.xlsx", POSTAL_ROWS))
    run = client.post(
        f"{API}/chat/workflows/{chat_id}/execute", params={"wait": "true"}, json=seed_workflow()
    ).json()["data"]
    transcript = client.get(url).json()["data"]
    assert [(m["role"], m["text"]) for m in transcript] == [
        ("user", "extract the postal codes please"),
        ("system", "Uploaded 'data.xlsx' (v1)"),
        ("system", f"Run {run['run_id']} completed: produced 'data_extract-columns.xlsx'"),
    ]
    assert transcript[2]["data"]["outputs"][0]["row_count"] == 3
    assert client.get(url, params={"after": transcript[0]["id"]}).json()["data"] == transcript[1:]


def test_operations_catalogue_serves_schema_and_example(client: httpx.Client) -> None:
    operations = {op["name"]: op for op in client.get(f"{API}/operations").json()["data"]}
    extract = operations["excel/extract-columns-to-file"]
    assert extract["example"] == {"columns": ["postal_code"], "remove_duplicates": True}
    schema = extract["arguments_schema"]
    assert schema["required"] == ["columns"]
    assert set(schema["properties"]) == {"columns", "remove_duplicates", "sheet", "output"}
    assert extract["description"]


def test_openapi_documents_every_endpoint(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    expected = {
        "/api/v1/health": {"get"},
        "/api/v1/operations": {"get"},
        "/api/v1/chat/workflows": {"get", "post"},
        "/api/v1/chat/workflows/{chat_id}": {"get", "patch", "delete"},
        "/api/v1/chat/workflows/{chat_id}/upload": {"post"},
        "/api/v1/chat/workflows/{chat_id}/files": {"get"},
        "/api/v1/chat/workflows/{chat_id}/files/{filename}": {"get", "delete"},
        "/api/v1/chat/workflows/{chat_id}/execute": {"post"},
        "/api/v1/chat/workflows/{chat_id}/runs": {"get"},
        "/api/v1/chat/workflows/{chat_id}/runs/{run_id}": {"get"},
        "/api/v1/chat/workflows/{chat_id}/events": {"get"},
        "/api/v1/chat/workflows/{chat_id}/messages": {"get", "post"},
    }
    for path, methods in expected.items():
        assert set(paths[path]) == methods, path
    execute = paths["/api/v1/chat/workflows/{chat_id}/execute"]["post"]
    assert {"202", "200", "404", "422"} <= set(execute["responses"])
    upload_body = paths["/api/v1/chat/workflows/{chat_id}/upload"]["post"]["requestBody"]
    assert "multipart/form-data" in upload_body["content"]
    assert client.get("/docs").status_code == 200
    assert client.get("/redoc").status_code == 200
    assert not {"/", "/ui/{name}"} & set(paths)  # the chat page's routes are not the API


def test_a_csv_delimiter_can_be_given_at_upload(client: httpx.Client) -> None:
    chat_id = create_chat(client)
    # Both ',' and ';' split every line into two: detection prefers ','; the user knows better.
    body = b"code,part;label\n1,5;x\n2,25;y\n"
    url = f"{API}/chat/workflows/{chat_id}/upload"
    detected = client.post(url, files={"file": ("a.csv", body)}).json()["data"][0]
    given = client.post(url, files={"file": ("b.csv", body)}, data={"delimiter": ";"}).json()[
        "data"
    ][0]
    assert (detected["delimiter"], detected["columns"]) == (None, ["code", "part;label"])
    assert (given["delimiter"], given["columns"]) == (";", ["code,part", "label"])
    run = client.post(
        f"{API}/chat/workflows/{chat_id}/execute",
        params={"wait": "true"},
        json={
            "input": "b.csv",
            "steps": [
                {
                    "operation": "excel/extract-columns-to-file",
                    "arguments": {"columns": ["code,part"], "output": "codes.csv"},
                }
            ],
        },
    ).json()["data"]
    assert client.get(run["outputs"][0]["download_url"]).text.splitlines() == [
        '"code,part"',
        '"1,5"',
        '"2,25"',
    ]
    bad = client.post(url, files={"file": ("c.csv", body)}, data={"delimiter": "x"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_delimiter"


def test_serving_process_freezes_start_up_objects_only_when_asked(tmp_path: Path) -> None:
    """`chatflow serve` freezes start-up objects so full GC pauses stay short; hosts do not."""
    gc.unfreeze()
    try:
        with run_server(make_settings(tmp_path / "plain")) as live:
            assert httpx.get(f"{live.url}{API}/health").status_code == 200
            assert gc.get_freeze_count() == 0
        with run_server(make_settings(tmp_path / "serve"), freeze_gc=True) as live:
            assert httpx.get(f"{live.url}{API}/health").status_code == 200
            # The registry, settings and app are frozen (thousands of objects), not a handful.
            assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
