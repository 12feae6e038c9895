"""Request bounds at the API's edge: JSON body size, steps per workflow, what errors echo back."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.support import (
    POSTAL_ROWS,
    LiveServer,
    create_chat,
    make_settings,
    run_server,
    upload,
    write_xlsx,
)

pytestmark = pytest.mark.both_databases  # the module server: SQLite, then PostgreSQL + Redis

API = "/api/v1"
CHAT = f"{API}/chat/workflows"
STEP = {"operation": "excel/sort", "arguments": {"by": [{"column": "name"}]}}


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server with small bounds: 8 KiB JSON bodies, 3 steps (shared: each test has its chat)."""
    data = tmp_path_factory.mktemp("small") / "data"
    with run_server(make_settings(data, max_json_kb=8, max_steps=3)) as server:
        yield server


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    return error


def _raw(server: LiveServer, head: str, body_chunks: Iterator[bytes]) -> tuple[int, bytes]:
    """Send a request byte for byte (so Content-Length can be absent), return status and body."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(head.encode())
        for chunk in body_chunks:
            conn.sendall(chunk)
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += conn.recv(65536)
        headers, body = answer.split(b"\r\n\r\n", 1)
        length = int(headers.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        while len(body) < length:
            body += conn.recv(65536)
    return int(headers.split(b" ", 2)[1]), body


def _chunked(payload: bytes, size: int = 1024) -> Iterator[bytes]:
    for start in range(0, len(payload), size):
        part = payload[start : start + size]
        yield f"{len(part):x}\r\n".encode() + part + b"\r\n"
    yield b"0\r\n\r\n"


def test_json_bodies_over_the_limit_get_413_before_they_are_parsed(
    small: LiveServer, tmp_path: Path
) -> None:
    with httpx.Client(base_url=small.url, timeout=30) as client:
        chat_id = create_chat(client)
        assert (
            upload(client, chat_id, write_xlsx(tmp_path / "d.xlsx", POSTAL_ROWS)).status_code == 201
        )
        execute = f"{CHAT}/{chat_id}/execute"
        # Under the limit: an ordinary answer (here the step's own 422).
        fits = {"steps": [{"operation": "excel/nope", "arguments": {"x": "a" * 7000}}]}
        _error(client.post(execute, json=fits), 422, "unknown_operation")
        # Over it, with Content-Length: refused on the header alone, even if not valid JSON.
        over = json.dumps({"steps": [STEP], "input": "a" * 9000}).encode()
        error = _error(
            client.post(execute, content=over, headers={"Content-Type": "application/json"}),
            413,
            "body_too_large",
        )
        assert error["details"] == {"limit_bytes": 8 * 1024}
        assert "8 KiB" in error["message"]
        _error(client.post(execute, content=b"{" * 9000), 413, "body_too_large")
        # Every JSON route, and chat creation too.
        _error(client.post(CHAT, content=over), 413, "body_too_large")
        _error(client.post(f"{CHAT}/{chat_id}/messages", content=over), 413, "body_too_large")
    # Without Content-Length (chunked): counted as the chunks arrive.
    head = (
        f"POST {execute} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    status, body = _raw(small, head, _chunked(over))
    assert status == 413
    assert json.loads(body)["error"]["code"] == "body_too_large"
    status, body = _raw(small, head, _chunked(json.dumps(fits).encode()))
    assert (status, json.loads(body)["error"]["code"]) == (422, "unknown_operation")


def test_uploads_keep_their_own_limit(small: LiveServer, tmp_path: Path) -> None:
    """A multipart upload is far over CHATFLOW_MAX_JSON_KB and is still taken."""
    rows = [["name", "note"]] + [[f"n{i}", "x" * 200] for i in range(400)]
    path = write_xlsx(tmp_path / "wide.xlsx", rows)
    with httpx.Client(base_url=small.url, timeout=30) as client:
        chat_id = create_chat(client)
        big_csv = tmp_path / "big.csv"
        big_csv.write_text("a,b\n" + "1,2\n" * 20_000)  # 80 KB
        assert upload(client, chat_id, path).status_code == 201
        assert upload(client, chat_id, big_csv).status_code == 201


def test_a_huge_body_costs_the_server_no_memory(tmp_path: Path) -> None:
    """64 MiB sent chunked to execute: 413 at 1 MiB (the default); the rest is read and dropped."""
    with run_server(make_settings(tmp_path / "data")) as server:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            chat_id = create_chat(client)
        before = _rss_mb()
        # From here VmHWM is the peak: a body held in memory, even briefly, shows there.
        Path("/proc/self/clear_refs").write_text("5")
        block = b"[" * (1024 * 1024)
        head = (
            f"POST {CHAT}/{chat_id}/execute HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        chunks = (f"{len(block):x}\r\n".encode() + block + b"\r\n" for _ in range(64))
        status, body = _raw(server, head, _chain(chunks, [b"0\r\n\r\n"]))
        assert (status, json.loads(body)["error"]["code"]) == (413, "body_too_large")
        # The test process hosts the server: its growth is the server's.
        assert _rss_mb("VmHWM") - before < 24
        assert httpx.get(f"{server.url}{API}/health").json()["data"]["status"] == "ok"


def _chain(*parts: Any) -> Iterator[bytes]:
    for part in parts:
        yield from part


def _rss_mb(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_steps_per_workflow_are_bounded_everywhere(small: LiveServer, tmp_path: Path) -> None:
    with httpx.Client(base_url=small.url, timeout=30) as client:
        chat_id = create_chat(client)
        assert (
            upload(client, chat_id, write_xlsx(tmp_path / "d.xlsx", POSTAL_ROWS)).status_code == 201
        )
        four = {"steps": [STEP] * 4}
        for params in ({}, {"dry_run": "true"}, {"wait": "true"}):
            error = _error(
                client.post(f"{CHAT}/{chat_id}/execute", params=params, json=four),
                422,
                "too_many_steps",
            )
            assert error["details"] == {"limit": 3, "steps": 4}
            assert "at most 3 steps" in error["message"]
        saving = client.post(f"{CHAT}/{chat_id}/workflows", json={"name": "w", **four})
        _error(saving, 422, "too_many_steps")
        assert client.get(f"{API}/workflows").json()["data"] == []
        assert client.get(f"{CHAT}/{chat_id}/runs").json()["data"] == []
        # At the limit everything works.
        three = {"steps": [STEP] * 3}
        run = client.post(f"{CHAT}/{chat_id}/execute", params={"wait": "true"}, json=three)
        assert run.json()["data"]["status"] == "completed"
        assert client.post(f"{CHAT}/{chat_id}/execute?dry_run=true", json=three).status_code == 200
        saved = client.post(f"{CHAT}/{chat_id}/workflows", json={"name": "w", **three})
        assert saved.status_code == 201


LONG = 200_000


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"steps": [{"operation": "x" * LONG}]}, "unknown_operation"),
        ({"steps": [STEP], "y" * LONG: 1}, "validation_error"),
        ({"workflow": "w" * LONG}, "workflow_not_found"),
        ({"steps": [STEP], "input": "i" * LONG}, "input_not_found"),
        (
            {"steps": [{"operation": "excel/sort", "arguments": {"z" * LONG: 1}}]},
            "invalid_arguments",
        ),
    ],
)
def test_errors_do_not_echo_a_huge_input(
    server: LiveServer, client: httpx.Client, body: dict[str, Any], code: str
) -> None:
    chat_id = create_chat(client)
    response = client.post(f"{CHAT}/{chat_id}/execute", json=body)
    _error(response, 422, code)
    # The error still says what is wrong, in a few KiB, without the value itself.
    assert len(response.content) < 4 * 1024, len(response.content)
    assert re.search(r"(.)\1{600}", response.text) is None, response.text


def test_thousands_of_validation_errors_are_cut_to_fifty(
    server: LiveServer, client: httpx.Client
) -> None:
    chat_id = create_chat(client)
    body = {"steps": [{"operation": "x", "bad": i} for i in range(5000)]}
    response = client.post(f"{CHAT}/{chat_id}/execute", json=body)
    error = _error(response, 422, "validation_error")
    assert error["message"] == "steps[0].bad: Extra inputs are not permitted"
    assert len(error["details"]) == 51
    assert error["details"][:2] == [
        {
            "loc": ["body", "steps", i, "bad"],
            "msg": "Extra inputs are not permitted",
            "type": "extra_forbidden",
        }
        for i in range(2)
    ]
    assert error["details"][-1] == "... (4950 more)"


def test_a_socket_message_over_64_kib_closes_that_socket_only(
    server: LiveServer, client: httpx.Client
) -> None:
    """Clients send pings and an auth message; a 16 MiB frame (uvicorn's default) is refused."""
    chat_id = create_chat(client)
    url = f"{server.ws_url}/chat/{chat_id}"
    with connect(url, open_timeout=10) as ws, connect(url, open_timeout=10) as other:
        ws.send(json.dumps({"type": "ping", "pad": "x" * 70_000}))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        other.send(json.dumps({"type": "ping", "pad": "x" * 60_000}))
        assert json.loads(other.recv(timeout=10)) == {"type": "pong"}
