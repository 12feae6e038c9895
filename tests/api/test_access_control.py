"""API keys, chat ownership, WebSocket authentication and Origin checks, CORS."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.support import (
    POSTAL_ROWS,
    LiveServer,
    make_settings,
    run_server,
    seed_workflow,
    write_xlsx,
)

API = "/api/v1"
KEY_A, KEY_B = "key-a-0123456789abcdef", "key-b-fedcba9876543210"


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[LiveServer]:
    with run_server(make_settings(tmp_path / "data", api_keys=f"{KEY_A}, {KEY_B}")) as server:
        yield server


def _client(server: LiveServer, key: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=server.url, headers=headers, timeout=30)


def _close_code(url: str, **kwargs: object) -> tuple[int, str]:
    ws = connect(url, open_timeout=10, **kwargs)  # type: ignore[arg-type]
    with ws, pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=10)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


def test_keys_are_required_except_for_health_and_docs(keyed: LiveServer) -> None:
    with _client(keyed, None) as anonymous, _client(keyed, "wrong") as wrong:
        for path in (f"{API}/health", "/docs", "/redoc", "/openapi.json"):
            assert anonymous.get(path).status_code == 200, path
        # Load balancers probe without a key.
        for path in (f"{API}/health/live", f"{API}/health/ready"):
            assert anonymous.get(path).status_code == 200, path
        for client in (anonymous, wrong):
            response = client.post(f"{API}/chat/workflows")
            assert response.status_code == 401
            assert response.json()["error"]["code"] == "unauthorized"
            assert response.headers["www-authenticate"] == "Bearer"
            assert client.get(f"{API}/operations").status_code == 401
            assert client.get(f"{API}/chat/workflows").status_code == 401
            assert client.get("/metrics").status_code == 401
    spec = httpx.get(f"{keyed.url}/openapi.json").json()
    assert "HTTPBearer" in spec["components"]["securitySchemes"]


def test_a_chat_belongs_to_the_key_that_created_it(keyed: LiveServer, tmp_path: Path) -> None:
    with _client(keyed, KEY_A) as a, _client(keyed, KEY_B) as b:
        chat_id = a.post(f"{API}/chat/workflows").json()["data"]["chat_id"]
        source = write_xlsx(tmp_path / "data.xlsx", POSTAL_ROWS)
        with source.open("rb") as handle:
            assert (
                a.post(f"{API}/chat/workflows/{chat_id}/upload", files={"file": handle}).status_code
                == 201
            )
        run = a.post(
            f"{API}/chat/workflows/{chat_id}/execute", params={"wait": "true"}, json=seed_workflow()
        ).json()["data"]
        assert run["status"] == "completed"
        base = f"{API}/chat/workflows/{chat_id}"
        for method, path in [
            ("GET", ""),
            ("GET", "/files"),
            ("GET", "/files/data.xlsx"),
            ("GET", "/runs"),
            ("GET", f"/runs/{run['run_id']}"),
            ("GET", "/events"),
            ("GET", "/messages"),
            ("DELETE", "/files/data.xlsx"),
            ("DELETE", ""),
        ]:
            response = b.request(method, base + path)
            assert response.status_code == 404, (method, path)
        assert b.post(f"{base}/execute", json=seed_workflow()).status_code == 404
        assert b.post(f"{base}/messages", json={"text": "x"}).status_code == 404
        assert b.get(f"{API}/chat/workflows").json()["data"]["items"] == []
        assert [c["chat_id"] for c in a.get(f"{API}/chat/workflows").json()["data"]["items"]] == [
            chat_id
        ]
        # Saved workflows are per key as well.
        a.post(f"{base}/workflows", json={"name": "mine", "run_id": run["run_id"]})
        assert b.get(f"{API}/workflows").json()["data"] == []
        assert b.get(f"{API}/workflows/mine").status_code == 404
        # Nothing of A's was touched by B's attempts.
        assert a.get(f"{base}/files/data.xlsx").content == source.read_bytes()

        ws_url = f"{keyed.ws_url}/chat/{chat_id}"
        assert _close_code(ws_url, additional_headers={"Authorization": f"Bearer {KEY_B}"}) == (
            4404,
            "chat not found",
        )


def test_websocket_auth_by_header_query_or_first_message(keyed: LiveServer) -> None:
    with _client(keyed, KEY_A) as a:
        chat_id = a.post(f"{API}/chat/workflows").json()["data"]["chat_id"]
        url = f"{keyed.ws_url}/chat/{chat_id}"

        def follows(ws_url: str, first: str | None = None, **kwargs: object) -> bool:
            with connect(ws_url, open_timeout=10, **kwargs) as ws:  # type: ignore[arg-type]
                if first is not None:
                    ws.send(first)
                a.post(f"{API}/chat/workflows/{chat_id}/messages", json={"text": "hi"})
                return bool(json.loads(ws.recv(timeout=10))["type"] == "message_added")

        assert follows(url, additional_headers={"Authorization": f"Bearer {KEY_A}"})
        assert follows(f"{url}?token={KEY_A}")
        assert follows(url, first=json.dumps({"type": "auth", "token": KEY_A}))

    for kwargs in (
        {"additional_headers": {"Authorization": "Bearer nope"}},
        {},
    ):
        target = f"{keyed.ws_url}/chat/{chat_id}" + ("" if kwargs else "?token=nope")
        assert _close_code(target, **kwargs)[0] == 4401
    with connect(f"{keyed.ws_url}/chat/{chat_id}", open_timeout=10) as ws:
        ws.send(json.dumps({"type": "auth", "token": "nope"}))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


def test_cross_site_origins_are_refused(tmp_path: Path) -> None:
    with run_server(make_settings(tmp_path / "a")) as server, _client(server, None) as client:
        chat_id = client.post(f"{API}/chat/workflows").json()["data"]["chat_id"]
        url = f"{server.ws_url}/chat/{chat_id}"
        assert _close_code(url, origin="http://evil.example") == (4403, "origin not allowed")
        same = server.url.removeprefix("http://")
        with connect(url, origin=f"http://{same}", open_timeout=10) as ws:  # type: ignore[arg-type]
            ws.send(json.dumps({"type": "ping"}))
            assert json.loads(ws.recv(timeout=10)) == {"type": "pong"}
        # CORS is off by default.
        preflight = client.options(
            f"{API}/chat/workflows",
            headers={"Origin": "http://app.example", "Access-Control-Request-Method": "POST"},
        )
        assert "access-control-allow-origin" not in preflight.headers
    settings = make_settings(
        tmp_path / "b",
        allowed_origins="http://app.example",
        cors_origins="http://app.example",
    )
    with run_server(settings) as server, _client(server, None) as client:
        chat_id = client.post(f"{API}/chat/workflows").json()["data"]["chat_id"]
        url = f"{server.ws_url}/chat/{chat_id}"
        with connect(url, origin="http://app.example", open_timeout=10) as ws:  # type: ignore[arg-type]
            ws.send(json.dumps({"type": "ping"}))
            assert json.loads(ws.recv(timeout=10)) == {"type": "pong"}
        assert _close_code(url, origin="http://evil.example")[0] == 4403
        preflight = client.options(
            f"{API}/chat/workflows",
            headers={"Origin": "http://app.example", "Access-Control-Request-Method": "POST"},
        )
        assert preflight.headers["access-control-allow-origin"] == "http://app.example"
