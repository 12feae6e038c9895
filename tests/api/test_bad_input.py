"""Bad input gets a clear 4xx with a stable code; nothing is lost, nothing escapes the data dir."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
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

pytestmark = pytest.mark.both_databases  # the module server: SQLite, then PostgreSQL + Redis

API = "/api/v1"
MISSING = "3f0c2a0e-0000-4000-8000-000000000000"


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    assert error["message"]
    return dict(error)


def upload_raw(client: httpx.Client, chat_id: str, filename: bytes, body: bytes) -> httpx.Response:
    """A multipart upload with the filename bytes exactly as given (clients would escape them)."""
    boundary = b"chatflow-test-boundary"
    payload = (
        b"--" + boundary + b"\r\n"
        b'Content-Disposition: form-data; name="file"; filename="' + filename + b'"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n" + body + b"\r\n"
        b"--" + boundary + b"--\r\n"
    )
    return client.post(
        f"{API}/chat/workflows/{chat_id}/upload",
        content=payload,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary.decode()}"},
    )


def _files_on_disk(server: LiveServer) -> list[Path]:
    return sorted(p for p in server.settings.resolved_data_dir.rglob("*") if p.is_file())


@pytest.mark.parametrize("chat_id", [MISSING, "nope", "..", "%2e%2e"])
def test_unknown_chat_is_404_everywhere(client: httpx.Client, chat_id: str) -> None:
    base = f"{API}/chat/workflows/{chat_id}"
    for method, path in [
        ("GET", ""),
        ("DELETE", ""),
        ("GET", "/files"),
        ("GET", "/files/data.xlsx"),
        ("GET", "/runs"),
        ("GET", f"/runs/{MISSING}"),
        ("GET", "/events"),
        ("GET", "/messages"),
    ]:
        response = client.request(method, base + path)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error"]["code"] in {"chat_not_found", "not_found"}
    for response in (
        client.post(f"{base}/execute", json=seed_workflow()),
        client.post(f"{base}/messages", json={"text": "hi"}),
    ):
        assert response.status_code == 404
        # ".." is resolved by the client into another (unknown) route: plain not_found.
        assert response.json()["error"]["code"] in {"chat_not_found", "not_found"}


def test_unknown_run_and_file_are_404(client: httpx.Client) -> None:
    chat_id = create_chat(client)
    _error(client.get(f"{API}/chat/workflows/{chat_id}/runs/{MISSING}"), 404, "run_not_found")
    _error(client.get(f"{API}/chat/workflows/{chat_id}/files/x.xlsx"), 404, "file_not_found")
    _error(client.delete(f"{API}/chat/workflows/{chat_id}/files/x.xlsx"), 404, "file_not_found")
    _error(client.get(f"{API}/no/such/route"), 404, "not_found")


@pytest.mark.parametrize(
    "name",
    [
        "../evil.xlsx",
        "..\\evil.xlsx",
        "/etc/passwd.csv",
        "C:\\x\\evil.xlsx",
        "a\x00b.xlsx",
        "..",
        ".",
        "",
    ],
)
def test_upload_refuses_path_like_names_and_writes_nothing(
    server: LiveServer, client: httpx.Client, tmp_path: Path, name: str
) -> None:
    chat_id = create_chat(client)
    before = _files_on_disk(server)
    source = write_xlsx(tmp_path / "data.xlsx", POSTAL_ROWS)
    response = upload_raw(client, chat_id, name.encode(), source.read_bytes())
    assert response.status_code in {400, 422}, response.text
    assert response.json()["error"]["code"] in {"invalid_filename", "no_file"}
    assert _files_on_disk(server) == before
    assert client.get(f"{API}/chat/workflows/{chat_id}/files").json()["data"] == []


@pytest.mark.parametrize(
    "raw", ["..%2f..%2fetc%2fpasswd", "%2e%2e%5cchatflow.db", "..%5C..%5Cx", "a%00b"]
)
def test_download_refuses_traversal(client: httpx.Client, raw: str) -> None:
    chat_id = create_chat(client)
    response = client.get(f"{API}/chat/workflows/{chat_id}/files/{raw}")
    assert response.status_code in {400, 404}
    assert "root:" not in response.text
    assert response.json()["error"]["code"] in {"invalid_filename", "not_found", "file_not_found"}


def test_upload_over_the_limit_is_413_and_leaves_nothing(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", max_upload_mb=1)
    with run_server(settings) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        chat_id = create_chat(client)
        before = _files_on_disk(server)
        big = tmp_path / "big.csv"
        big.write_bytes(b"a,b\n" + b"1,2\n" * 400_000)  # 1.6 MB
        error = _error(upload(client, chat_id, big), 413, "file_too_large")
        assert error["message"] == (
            "file 'big.csv' is larger than the upload limit of 1 MB; the setting "
            "CHATFLOW_MAX_UPLOAD_MB raises it"
        )
        assert error["details"]["setting"] == "CHATFLOW_MAX_UPLOAD_MB"
        assert _files_on_disk(server) == before
        # The server is still fine.
        small = write_xlsx(tmp_path / "data.xlsx", POSTAL_ROWS)
        assert upload(client, chat_id, small).status_code == 201


def test_upload_of_something_that_is_not_a_spreadsheet(
    server: LiveServer, client: httpx.Client, tmp_path: Path
) -> None:
    chat_id = create_chat(client)
    fake = tmp_path / "report.xlsx"
    fake.write_bytes(b"just some text, not a zip\n" * 10)
    error = _error(upload(client, chat_id, fake), 422, "not_a_spreadsheet")
    assert "report.xlsx" in error["message"]
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    _error(upload(client, chat_id, notes), 415, "unsupported_file_type")
    _error(
        client.post(f"{API}/chat/workflows/{chat_id}/upload", data={"x": "1"}),
        415,
        "expected_multipart",
    )
    _error(
        client.post(
            f"{API}/chat/workflows/{chat_id}/upload", files={"other": ("a.csv", b"a\n1\n")}
        ),
        400,
        "no_file",
    )
    # One bad file in a multi-file upload stores none of them.
    good = write_xlsx(tmp_path / "good.xlsx", POSTAL_ROWS)
    with good.open("rb") as a, fake.open("rb") as b:
        response = client.post(
            f"{API}/chat/workflows/{chat_id}/upload",
            files=[("file", ("good.xlsx", a)), ("file", ("report.xlsx", b))],
        )
    assert response.status_code == 422
    assert client.get(f"{API}/chat/workflows/{chat_id}/files").json()["data"] == []
    assert [p for p in _files_on_disk(server) if p.parent.name == chat_id] == []


def test_execute_validates_the_whole_request_before_running(
    client: httpx.Client, tmp_path: Path
) -> None:
    chat_id = create_chat(client)
    url = f"{API}/chat/workflows/{chat_id}/execute"
    _error(client.post(url, json=seed_workflow()), 422, "input_not_found")
    upload(client, chat_id, write_xlsx(tmp_path / "data.xlsx", POSTAL_ROWS))

    malformed = client.post(
        url, content=b'{"steps": [', headers={"Content-Type": "application/json"}
    )
    _error(malformed, 422, "malformed_json")
    not_text = client.post(url, content=b"\xc3\x28", headers={"Content-Type": "application/json"})
    _error(not_text, 422, "malformed_json")
    _error(client.post(url, json={"steps": []}), 422, "empty_workflow")
    unknown = _error(
        client.post(
            url, json={"steps": [seed_workflow()["steps"][0], {"operation": "excel/nope"}]}
        ),
        422,
        "unknown_operation",
    )
    assert unknown["details"]["step_index"] == 1
    assert "steps[1]" in unknown["message"]
    wrong = _error(
        client.post(url, json=seed_workflow(columns="postal_code")), 422, "invalid_arguments"
    )  # type: ignore[arg-type]
    assert wrong["details"]["step_index"] == 0
    assert wrong["message"].startswith("steps[0] (excel/extract-columns-to-file): columns:")
    _error(client.post(url, json=seed_workflow(bogus=1)), 422, "invalid_arguments")
    sort_into = {
        "operation": "excel/sort",
        "arguments": {"by": [{"column": "city"}], "output": "../x.xlsx"},
    }
    bad_name = _error(client.post(url, json={"steps": [sort_into]}), 422, "invalid_arguments")
    assert bad_name["message"].startswith("steps[0] (excel/sort): output:")
    _error(client.post(url, json={"steps": [{"operation": 5}]}), 422, "validation_error")
    _error(
        client.post(url, json={**seed_workflow(), "input": "missing.xlsx"}), 422, "input_not_found"
    )
    missing = _error(client.post(url, json=seed_workflow(columns=["zip"])), 422, "column_not_found")
    assert missing["message"] == (
        "steps[0] (excel/extract-columns-to-file): Column 'zip' not found; "
        "available columns: name, postal_code, city (in 'data.xlsx')"
    )
    # Nothing ran.
    assert client.get(f"{API}/chat/workflows/{chat_id}/runs").json()["data"] == []


def test_no_request_produces_a_500(client: httpx.Client) -> None:
    chat_id = create_chat(client)
    attempts = [
        (
            "POST",
            f"{API}/chat/workflows",
            {"content": b"\xff\xfe", "headers": {"Content-Type": "application/json"}},
        ),
        ("POST", f"{API}/chat/workflows", {"json": {"title": 5}}),
        ("POST", f"{API}/chat/workflows", {"json": {"title": "x" * 500}}),
        ("GET", f"{API}/chat/workflows", {"params": {"limit": "-1"}}),
        ("GET", f"{API}/chat/workflows", {"params": {"cursor": "garbage"}}),
        ("GET", f"{API}/chat/workflows/{chat_id}/events", {"params": {"since": "x"}}),
        ("POST", f"{API}/chat/workflows/{chat_id}/messages", {"json": {"text": ""}}),
        (
            "POST",
            f"{API}/chat/workflows/{chat_id}/upload",
            {
                "content": b"--x\r\nbroken",
                "headers": {"Content-Type": "multipart/form-data; boundary=x"},
            },
        ),
        (
            "POST",
            f"{API}/chat/workflows/{chat_id}/upload",
            {"content": b"", "headers": {"Content-Type": "multipart/form-data"}},
        ),
        ("PUT", f"{API}/chat/workflows/{chat_id}", {}),
    ]
    for method, url, kwargs in attempts:
        response = client.request(method, url, **kwargs)
        assert 400 <= response.status_code < 500, (method, url, response.status_code, response.text)
        assert response.json()["error"]["code"], response.text
        assert "Traceback" not in response.text
    assert client.get(f"{API}/health").status_code == 200
