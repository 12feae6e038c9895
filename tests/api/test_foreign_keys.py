"""Another key reaches nothing: every route and socket, walked with a foreign key, changes nothing.

Also: sockets are subscribed only once authenticated, /health tells a keyless caller only that
the server lives, and any spelling of a chat id (upper case, braces, urn:uuid:) is one chat.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from chatflow.api.routes import walk
from chatflow.app import create_app
from tests.support import (
    POSTAL_ROWS,
    LiveServer,
    create_chat,
    make_settings,
    receive_until,
    run_server,
    seed_workflow,
    upload,
    write_xlsx,
)

pytestmark = pytest.mark.both_databases  # the module server: SQLite, then PostgreSQL + Redis

API = "/api/v1"
KEY_A, KEY_B = "key-a-0123456789abcdef", "key-b-fedcba9876543210"
# A csv this long takes seconds to write as xlsx with xlsxwriter (the keyed server's engine:
# the Rust one writes it in a tenth of a second), so the runs stay unfinished while B acts.
SLOW_ROWS = 200_000


@dataclass
class Ids:
    chat: str  # A's chat, as B spells it
    run: str  # A's finished run
    slow: str  # A's run still queued behind another when B acts
    workflow: str = "mine"
    filename: str = "data.xlsx"


Call = Callable[[httpx.Client, Ids], httpx.Response]
CHAT = f"{API}/chat/workflows"
SLOW_STEPS = {
    "input": "big.csv",
    "steps": [{"operation": "excel/convert", "arguments": {"format": "xlsx"}}],
}

# Every HTTP route: what B sends and the status B must get. The calls that could change
# something go first, while the runs they could stop are still unfinished.
HTTP: dict[tuple[str, str], tuple[list[Call], int]] = {
    ("DELETE", "/api/v1/chat/workflows/{chat_id}"): (
        [lambda b, i: b.delete(f"{CHAT}/{i.chat}")],
        404,
    ),
    ("PATCH", "/api/v1/chat/workflows/{chat_id}"): (
        [lambda b, i: b.patch(f"{CHAT}/{i.chat}", json={"title": "B was here"})],
        404,
    ),
    ("POST", "/api/v1/chat/workflows/{chat_id}/runs/{run_id}/cancel"): (
        [lambda b, i: b.post(f"{CHAT}/{i.chat}/runs/{i.slow}/cancel")],
        404,
    ),
    ("DELETE", "/api/v1/chat/workflows/{chat_id}/files/{filename}"): (
        [
            lambda b, i: b.delete(f"{CHAT}/{i.chat}/files/{i.filename}"),
            lambda b, i: b.delete(f"{CHAT}/{i.chat}/files/{i.filename}", params={"version": 1}),
        ],
        404,
    ),
    ("DELETE", "/api/v1/workflows/{name}"): (
        [lambda b, i: b.delete(f"{API}/workflows/{i.workflow}")],
        404,
    ),
    ("POST", "/api/v1/chat/workflows/{chat_id}/execute"): (
        [
            lambda b, i: b.post(f"{CHAT}/{i.chat}/execute", json=seed_workflow()),
            lambda b, i: b.post(f"{CHAT}/{i.chat}/execute?wait=true", json=seed_workflow()),
            lambda b, i: b.post(f"{CHAT}/{i.chat}/execute?dry_run=true", json=seed_workflow()),
            # Ownership comes before the saved workflow B does not have (422) is looked up.
            lambda b, i: b.post(f"{CHAT}/{i.chat}/execute", json={"workflow": i.workflow}),
            lambda b, i: b.post(
                f"{CHAT}/{i.chat}/execute",
                json=seed_workflow(),
                headers={"Idempotency-Key": "replay-me"},
            ),
        ],
        404,
    ),
    ("POST", "/api/v1/chat/workflows/{chat_id}/upload"): (
        [lambda b, i: b.post(f"{CHAT}/{i.chat}/upload", files={"file": ("x.csv", b"a\n1\n")})],
        404,
    ),
    ("POST", "/api/v1/chat/workflows/{chat_id}/messages"): (
        [lambda b, i: b.post(f"{CHAT}/{i.chat}/messages", json={"text": "hi from B"})],
        404,
    ),
    ("POST", "/api/v1/chat/workflows/{chat_id}/workflows"): (
        [
            lambda b, i: b.post(f"{CHAT}/{i.chat}/workflows", json={"name": "x", "run_id": i.run}),
            lambda b, i: b.post(
                f"{CHAT}/{i.chat}/workflows",
                json={"name": i.workflow, "replace": True, **seed_workflow()},
            ),
        ],
        404,
    ),
    ("GET", "/api/v1/chat/workflows/{chat_id}"): ([lambda b, i: b.get(f"{CHAT}/{i.chat}")], 404),
    ("GET", "/api/v1/chat/workflows/{chat_id}/events"): (
        [lambda b, i: b.get(f"{CHAT}/{i.chat}/events")],
        404,
    ),
    ("GET", "/api/v1/chat/workflows/{chat_id}/messages"): (
        [lambda b, i: b.get(f"{CHAT}/{i.chat}/messages")],
        404,
    ),
    ("GET", "/api/v1/chat/workflows/{chat_id}/files"): (
        [lambda b, i: b.get(f"{CHAT}/{i.chat}/files")],
        404,
    ),
    ("GET", "/api/v1/chat/workflows/{chat_id}/files/{filename}"): (
        [lambda b, i: b.get(f"{CHAT}/{i.chat}/files/{i.filename}")],
        404,
    ),
    ("GET", "/api/v1/chat/workflows/{chat_id}/runs"): (
        [lambda b, i: b.get(f"{CHAT}/{i.chat}/runs")],
        404,
    ),
    ("GET", "/api/v1/chat/workflows/{chat_id}/runs/{run_id}"): (
        [lambda b, i: b.get(f"{CHAT}/{i.chat}/runs/{i.run}")],
        404,
    ),
    ("GET", "/api/v1/workflows/{name}"): (
        [lambda b, i: b.get(f"{API}/workflows/{i.workflow}")],
        404,
    ),
    # B's own space: answers, but holds nothing of A's (checked below).
    ("GET", "/api/v1/workflows"): ([lambda b, i: b.get(f"{API}/workflows")], 200),
    ("GET", "/api/v1/chat/workflows"): ([lambda b, i: b.get(CHAT)], 200),
    ("POST", "/api/v1/chat/workflows"): ([lambda b, i: b.post(CHAT, json={"title": "B's"})], 201),
    ("GET", "/api/v1/health"): ([lambda b, i: b.get(f"{API}/health")], 200),
    ("GET", "/api/v1/health/live"): ([lambda b, i: b.get(f"{API}/health/live")], 200),
    ("GET", "/api/v1/health/ready"): ([lambda b, i: b.get(f"{API}/health/ready")], 200),
    # Process-wide counters with no chat in any label: any valid key may read them.
    ("GET", "/metrics"): ([lambda b, i: b.get("/metrics")], 200),
    ("GET", "/api/v1/operations"): ([lambda b, i: b.get(f"{API}/operations")], 200),
    ("GET", "/openapi.json"): ([lambda b, i: b.get("/openapi.json")], 200),
    ("GET", "/docs"): ([lambda b, i: b.get("/docs")], 200),
    ("GET", "/docs/assets/{name}"): ([lambda b, i: b.get("/docs/assets/swagger-init.js")], 200),
    ("GET", "/redoc"): ([lambda b, i: b.get("/redoc")], 200),
    # The chat page's files: the page asks for a key itself when the API wants one.
    ("GET", "/"): ([lambda b, i: b.get("/")], 200),
    ("GET", "/ui/{name:path}"): ([lambda b, i: b.get("/ui/api.js")], 200),
}
# Routes any caller may use without a key.
PUBLIC = {
    "/api/v1/health",
    "/api/v1/health/live",
    "/api/v1/health/ready",
    "/openapi.json",
    "/docs",
    "/docs/assets/{name}",
    "/redoc",
    "/",
    "/ui/{name:path}",
}
SOCKETS = {"/chat/{chat_id}", "/api/v1/chat/workflows/{chat_id}/ws"}


def _route_keys() -> tuple[set[tuple[str, str]], set[str]]:
    """(method, path) of every HTTP route and the path of every WebSocket route of the app."""
    routes = walk(create_app(make_settings(Path("/nonexistent"))).routes)
    http = {(m, r.path) for r in routes if not r.websocket for m in r.methods - {"HEAD"}}
    return http, {r.path for r in routes if r.websocket}


def test_the_walk_covers_every_route_of_the_app() -> None:
    http, sockets = _route_keys()
    assert http == set(HTTP), "a route was added or removed: list it in HTTP with its answer"
    assert sockets == SOCKETS
    spec = create_app(make_settings(Path("/nonexistent"))).openapi()["paths"]
    documented = {(m.upper(), path) for path, ops in spec.items() for m in ops}
    assert documented <= http  # the walk found every documented route, at least


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[LiveServer]:
    settings = make_settings(
        tmp_path / "data", api_keys=f"{KEY_A},{KEY_B}", xlsx_writer="xlsxwriter"
    )
    with run_server(settings) as server:
        yield server


def _client(server: LiveServer, key: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=server.url, headers=headers, timeout=60)


def _close_code(url: str, first: str | None = None, **kwargs: Any) -> int:
    with connect(url, open_timeout=10, **kwargs) as ws:
        if first is not None:
            ws.send(first)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


def _snapshot(a: httpx.Client, chat_id: str) -> dict[str, Any]:
    base = f"{CHAT}/{chat_id}"
    return {
        "files": a.get(f"{base}/files").json()["data"],
        "runs": {r["run_id"]: r["status"] for r in a.get(f"{base}/runs").json()["data"]},
        "events": a.get(f"{base}/events").json()["data"],
        "messages": a.get(f"{base}/messages").json()["data"],
        "workflows": a.get(f"{API}/workflows").json()["data"],
        "chats": a.get(CHAT).json()["data"]["items"],
    }


def _build_a(a: httpx.Client, tmp_path: Path) -> tuple[str, str, str, str]:
    """A's chat with two files, a finished run, a saved workflow, a message and two slow runs."""
    chat_id = create_chat(a)
    assert upload(a, chat_id, write_xlsx(tmp_path / "data.xlsx", POSTAL_ROWS)).status_code == 201
    big = tmp_path / "big.csv"
    big.write_text(
        "id,name,amount\n" + "".join(f"{i},name {i},{i * 1.5}\n" for i in range(SLOW_ROWS))
    )
    assert upload(a, chat_id, big).status_code == 201
    done = a.post(
        f"{CHAT}/{chat_id}/execute?wait=true", json={"input": "data.xlsx", **seed_workflow()}
    ).json()["data"]
    assert done["status"] == "completed"
    saved = a.post(f"{CHAT}/{chat_id}/workflows", json={"name": "mine", "run_id": done["run_id"]})
    assert saved.status_code == 201
    assert a.post(f"{CHAT}/{chat_id}/messages", json={"text": "from A"}).status_code == 201
    first = a.post(f"{CHAT}/{chat_id}/execute", json=SLOW_STEPS).json()["data"]["run_id"]
    slow = a.post(f"{CHAT}/{chat_id}/execute", json=SLOW_STEPS).json()["data"]["run_id"]
    return chat_id, done["run_id"], first, slow


def _wait_finished(a: httpx.Client, chat_id: str, run_ids: list[str]) -> dict[str, str]:
    deadline = time.monotonic() + 120
    while True:
        runs = {r["run_id"]: r["status"] for r in a.get(f"{CHAT}/{chat_id}/runs").json()["data"]}
        if all(runs[r] not in ("queued", "running") for r in run_ids):
            return runs
        assert time.monotonic() < deadline, runs
        time.sleep(0.2)


def _walk_as_b(b: httpx.Client, ids: Ids, *, effects: bool) -> None:
    """B's calls on the routes that could change something (``effects``), or on the others."""
    for (method, path), (calls, status) in HTTP.items():
        if (method != "GET") != effects:
            continue
        for call in calls:
            response = call(b, ids)
            assert response.status_code == status, (method, path, response.text)
            if status == 404:
                assert response.json()["error"]["code"].endswith("not_found"), response.text


def _sockets_as_b(server: LiveServer, spelling: str) -> None:
    for url in (f"{server.ws_url}/chat/{spelling}", f"{server.ws_url}{CHAT}/{spelling}/ws"):
        header = {"Authorization": f"Bearer {KEY_B}"}
        assert _close_code(url, additional_headers=header) == 4404
        assert _close_code(f"{url}?token={KEY_B}") == 4404
        assert _close_code(url, first=json.dumps({"type": "auth", "token": KEY_B})) == 4404


def test_a_foreign_key_changes_nothing_on_any_route(keyed: LiveServer, tmp_path: Path) -> None:
    with _client(keyed, KEY_A) as a, _client(keyed, KEY_B) as b:
        chat_id, done, first, slow = _build_a(a, tmp_path)
        before = _snapshot(a, chat_id)
        assert before["runs"][slow] == "queued", "the slow runs finished too early"
        spellings = (chat_id, chat_id.upper(), "{" + chat_id + "}", f"urn:uuid:{chat_id}")
        for spelling in spellings:
            _walk_as_b(b, Ids(chat=spelling, run=done, slow=slow), effects=True)
        # Nothing B did stopped A's unfinished runs (the old DELETE cancelled them first);
        # that they end `completed` below proves it, this that they were unfinished then.
        status = a.get(f"{CHAT}/{chat_id}/runs/{slow}").json()["data"]["status"]
        assert status in ("queued", "running"), f"{status}: stopped by B, or too short a run"
        for spelling in spellings:
            _walk_as_b(b, Ids(chat=spelling, run=done, slow=slow), effects=False)
            _sockets_as_b(keyed, spelling)
        # B's own space shows nothing of A's.
        assert b.get(f"{API}/workflows").json()["data"] == []
        assert chat_id not in {c["chat_id"] for c in b.get(CHAT).json()["data"]["items"]}

        runs = _wait_finished(a, chat_id, [first, slow])
        after = _snapshot(a, chat_id)
    assert set(runs.values()) == {"completed"}, runs
    # What changed is exactly what A's two slow runs did.
    assert after["runs"] == {**before["runs"], first: "completed", slow: "completed"}
    assert all(f in after["files"] for f in before["files"])
    new_files = [f for f in after["files"] if f not in before["files"]]
    assert {(f["source"], f["run_id"]) for f in new_files} == {("output", first), ("output", slow)}
    assert after["events"][: len(before["events"])] == before["events"]
    new_events = after["events"][len(before["events"]) :]
    for event in new_events:  # the runs' own events, or the transcript entries they add
        if event.get("run_id") is None:
            assert event["type"] == "message_added" and event["entry"]["role"] == "system"
            assert first in event["message"] or slow in event["message"], event
        else:
            assert event["run_id"] in (first, slow), event
    assert {e["type"] for e in new_events} >= {"workflow_completed"}
    assert not {"workflow_cancelled", "workflow_failed"} & {e["type"] for e in new_events}
    assert after["messages"][: len(before["messages"])] == before["messages"]
    assert {m["role"] for m in after["messages"][len(before["messages"]) :]} == {"system"}
    assert after["workflows"] == before["workflows"]
    # A's chat list is the same chat, its last seq that of the runs' last event.
    assert [c["chat_id"] for c in after["chats"]] == [c["chat_id"] for c in before["chats"]]
    assert after["chats"][0]["last_seq"] == after["events"][-1]["seq"]


def test_without_a_key_every_route_but_the_public_ones_is_401(keyed: LiveServer) -> None:
    ids = Ids(chat="00000000-0000-0000-0000-000000000000", run="r", slow="s")
    with _client(keyed, None) as anonymous, _client(keyed, "not-a-key") as wrong:
        for (method, path), (calls, _) in HTTP.items():
            for client in (anonymous, wrong):
                response = calls[0](client, ids)
                expected = 200 if path in PUBLIC else 401
                assert response.status_code == expected, (method, path, response.text)
    for path in SOCKETS:
        url = keyed.ws_url + path.replace("{chat_id}", ids.chat)
        assert _close_code(f"{url}?token=not-a-key") == 4401


def test_health_without_a_key_tells_only_that_the_server_lives(keyed: LiveServer) -> None:
    with _client(keyed, None) as anonymous, _client(keyed, "nope") as wrong:
        for client in (anonymous, wrong):
            response = client.get(f"{API}/health")
            assert response.status_code == 200
            assert response.json() == {"data": {"status": "ok"}}
    with _client(keyed, KEY_A) as a:
        data = a.get(f"{API}/health").json()["data"]
    assert data["status"] == "ok"
    assert {"version", "active_runs", "subscribers", "uptime_s"} <= set(data)


def _subscribers(a: httpx.Client) -> int:
    return int(a.get(f"{API}/health").json()["data"]["subscribers"])


def test_a_socket_waiting_for_its_auth_message_is_not_subscribed(keyed: LiveServer) -> None:
    with _client(keyed, KEY_A) as a:
        chat_id = create_chat(a)
        with connect(f"{keyed.ws_url}/chat/{chat_id}", open_timeout=10) as ws:
            # Handshake done, no auth yet: the socket is not a subscriber and gets nothing.
            posted = a.post(f"{CHAT}/{chat_id}/messages", json={"text": "while waiting"})
            assert posted.status_code == 201
            with pytest.raises(TimeoutError):
                ws.recv(timeout=0.5)
            assert _subscribers(a) == 0
            ws.send(json.dumps({"type": "auth", "token": KEY_A}))
            # Once authenticated it is subscribed, and what it waited through is not lost.
            first = json.loads(ws.recv(timeout=10))
            assert (first["type"], first["entry"]["text"]) == ("message_added", "while waiting")
            assert _subscribers(a) == 1
            a.post(f"{CHAT}/{chat_id}/messages", json={"text": "after"})
            second = json.loads(ws.recv(timeout=10))
            assert (second["seq"], second["entry"]["text"]) == (first["seq"] + 1, "after")


@pytest.mark.parametrize("spell", [str.upper, lambda c: "{" + c + "}", lambda c: f"urn:uuid:{c}"])
def test_any_spelling_of_a_chat_id_is_the_same_chat(
    server: LiveServer, client: httpx.Client, tmp_path: Path, spell: Callable[[str], str]
) -> None:
    """Chat ids are canonicalised at the edge: sockets and routes alike."""
    chat_id = create_chat(client)
    other = spell(chat_id)
    assert other != chat_id
    upload(client, chat_id, write_xlsx(tmp_path / "data.xlsx", POSTAL_ROWS))
    with connect(f"{server.ws_url}/chat/{other}", open_timeout=10) as ws:
        run = client.post(f"{CHAT}/{chat_id}/execute", json=seed_workflow()).json()["data"]
        events = receive_until(ws, {"workflow_completed", "workflow_failed"})
    assert events[0]["type"] == "workflow_started"
    assert events[-1]["type"] == "workflow_completed"
    assert {e["run_id"] for e in events} == {run["run_id"]}
    assert {e["chat_id"] for e in events} == {chat_id}
    # And a run started under the other spelling reaches a socket opened with the canonical one.
    with connect(f"{server.ws_url}{CHAT}/{chat_id}/ws", open_timeout=10) as ws:
        accepted = client.post(f"{CHAT}/{other}/execute", json=seed_workflow())
        assert accepted.status_code == 202
        assert accepted.json()["data"]["status_url"].count(chat_id) == 1
        events = receive_until(ws, {"workflow_completed", "workflow_failed"})
    assert events[-1]["type"] == "workflow_completed"
    shown = client.get(f"{CHAT}/{other}").json()["data"]
    assert shown["chat_id"] == chat_id
    assert len(shown["runs"]) == 2
