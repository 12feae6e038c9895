"""WebSocket behaviour: replay, fan-out, slow subscribers, ping, unknown chats."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri

from tests.support import (
    POSTAL_ROWS,
    LiveServer,
    create_chat,
    make_settings,
    receive_until,
    run_server,
    seed_workflow,
    subscribe,
    upload,
    write_xlsx,
)

# The core flows hold on both databases (tests/conftest.py).
pytestmark = pytest.mark.both_databases


def _stored(client: httpx.Client, chat_id: str, since: int = 0) -> list[dict[str, Any]]:
    response = client.get(f"/api/v1/chat/workflows/{chat_id}/events", params={"since": since})
    assert response.status_code == 200
    return list(response.json()["data"])


def _run_and_wait(client: httpx.Client, chat_id: str) -> dict[str, Any]:
    response = client.post(
        f"/api/v1/chat/workflows/{chat_id}/execute", params={"wait": "true"}, json=seed_workflow()
    )
    assert response.status_code == 200, response.text
    return dict(response.json()["data"])


def test_since_replays_stored_events_then_continues_live(
    server: LiveServer, client: httpx.Client, tmp_path: Path
) -> None:
    chat_id = create_chat(client)
    upload(client, chat_id, write_xlsx(tmp_path / "data.xlsx", POSTAL_ROWS))
    _run_and_wait(client, chat_id)
    stored = _stored(client, chat_id)
    assert [e["seq"] for e in stored] == list(range(1, len(stored) + 1))
    assert stored[0]["type"] == "file_uploaded"

    middle = stored[4]["seq"]
    with subscribe(f"{server.ws_url}/chat/{chat_id}?since={middle}") as ws:
        replayed = [json.loads(ws.recv(timeout=10)) for _ in range(len(stored) - 4 - 1)]
        assert replayed == stored[5:]
        # ...and then live events follow with the next sequence numbers.
        client.post(f"/api/v1/chat/workflows/{chat_id}/messages", json={"text": "hello"})
        live = json.loads(ws.recv(timeout=10))
    assert live["type"] == "message_added"
    assert live["seq"] == stored[-1]["seq"] + 1
    assert live["entry"]["text"] == "hello"


def test_replay_during_a_run_has_no_gap_and_no_duplicate(
    server: LiveServer, client: httpx.Client, tmp_path: Path
) -> None:
    chat_id = create_chat(client)
    upload(client, chat_id, write_xlsx(tmp_path / "data.xlsx", POSTAL_ROWS))
    seen: list[dict[str, Any]] = []

    def late_subscriber() -> None:
        with subscribe(f"{server.ws_url}/chat/{chat_id}?since=0") as ws:
            seen.extend(receive_until(ws, {"workflow_completed"}))

    for _ in range(3):  # several runs so the subscriber joins while events are being produced
        client.post(f"/api/v1/chat/workflows/{chat_id}/execute", json=seed_workflow())
    thread = threading.Thread(target=late_subscriber)
    thread.start()
    thread.join(60)
    client.post(
        f"/api/v1/chat/workflows/{chat_id}/execute", params={"wait": "true"}, json=seed_workflow()
    )
    seqs = [e["seq"] for e in seen]
    assert seqs == list(range(1, len(seqs) + 1))
    assert seen == _stored(client, chat_id)[: len(seen)]


def test_two_subscribers_receive_the_same_events(
    server: LiveServer, client: httpx.Client, tmp_path: Path
) -> None:
    chat_id = create_chat(client)
    upload(client, chat_id, write_xlsx(tmp_path / "data.xlsx", POSTAL_ROWS))
    url = f"{server.ws_url}/api/v1/chat/workflows/{chat_id}/ws"
    with subscribe(url) as first, subscribe(f"{server.ws_url}/chat/{chat_id}") as second:
        client.post(f"/api/v1/chat/workflows/{chat_id}/execute", json=seed_workflow())
        a = receive_until(first, {"workflow_completed"})
        b = receive_until(second, {"workflow_completed"})
    assert a == b
    assert a[0]["type"] == "workflow_started"
    assert server_health(client)["subscribers"] == 0


def server_health(client: httpx.Client) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while True:  # the server notices closed sockets asynchronously
        health = dict(client.get("/api/v1/health").json()["data"])
        if health["subscribers"] == 0 or time.monotonic() > deadline:
            return health
        time.sleep(0.05)


def test_ping_pong_and_unknown_messages(server: LiveServer, client: httpx.Client) -> None:
    chat_id = create_chat(client)
    with subscribe(f"{server.ws_url}/chat/{chat_id}") as ws:
        ws.send(json.dumps({"type": "ping"}))
        assert json.loads(ws.recv(timeout=5)) == {"type": "pong"}
        ws.send("not json")
        reply = json.loads(ws.recv(timeout=5))
        assert reply["type"] == "error" and reply["code"] == "unknown_message"


@pytest.mark.parametrize("chat_id", ["00000000-0000-0000-0000-000000000000", "not-a-uuid"])
def test_unknown_chat_is_closed_with_4404(server: LiveServer, chat_id: str) -> None:
    with (
        subscribe(f"{server.ws_url}/chat/{chat_id}") as ws,
        pytest.raises(ConnectionClosed) as closed,
    ):
        ws.recv(timeout=5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4404
    assert closed.value.rcvd.reason == "chat not found"


class StuckClient:
    """A WebSocket client that completes the handshake and then stops reading.

    Built on websockets' sans-I/O protocol over a socket with a tiny receive buffer, so the
    server's sends really block (a library client keeps reading in a background thread).
    """

    def __init__(self, url: str) -> None:
        self.protocol = ClientProtocol(parse_uri(url), max_size=None)
        host_port = url.split("/")[2]
        host, port = host_port.rsplit(":", 1)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect((host, int(port)))
        self.protocol.send_request(self.protocol.connect())
        self._flush()
        while self.protocol.handshake_exc is None and not self.protocol.events_received():
            self.protocol.receive_data(self.sock.recv(65536))
        assert self.protocol.handshake_exc is None
        # The pong comes once the server has subscribed this socket: live events from then on.
        self.protocol.send_text(b'{"type": "ping"}')
        self._flush()
        pong: list[Frame] = []
        while not pong:
            self.protocol.receive_data(self.sock.recv(65536))
            pong = [e for e in self.protocol.events_received() if isinstance(e, Frame)]
        assert json.loads(pong[0].data) == {"type": "pong"}

    def _flush(self) -> None:
        for data in self.protocol.data_to_send():
            if data:
                self.sock.sendall(data)

    def drain(self, timeout: float) -> tuple[int, int | None]:
        """Read everything now: (text frames received, close code or None)."""
        self.sock.settimeout(timeout)
        texts, code = 0, None
        while code is None:
            try:
                data = self.sock.recv(1 << 20)
            except TimeoutError:
                break
            if not data:
                self.protocol.receive_eof()
            else:
                self.protocol.receive_data(data)
            for event in self.protocol.events_received():
                if isinstance(event, Frame) and event.opcode == Opcode.TEXT:
                    texts += 1
            if self.protocol.close_rcvd is not None:
                code = self.protocol.close_rcvd.code
            if not data:
                break
        self.sock.close()
        return texts, code


def test_stuck_subscriber_is_closed_1013_and_never_slows_a_fast_one(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", subscriber_queue_size=8)
    with run_server(settings) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        chat_id = create_chat(client)
        url = f"{server.ws_url}/chat/{chat_id}"
        stuck = StuckClient(url)
        fast_events: list[dict[str, Any]] = []
        # Enough bytes to fill the kernel's socket buffers (several MB on loopback).
        total, text = 400, "x" * 19_000
        with subscribe(url) as fast:
            fast.send(json.dumps({"type": "ping"}))  # answered once subscribed
            assert json.loads(fast.recv(timeout=10)) == {"type": "pong"}

            def read_fast() -> None:
                while len(fast_events) < total:
                    fast_events.append(json.loads(fast.recv(timeout=30)))

            reader = threading.Thread(target=read_fast)
            reader.start()
            started = time.monotonic()
            for i in range(total):
                response = client.post(
                    f"/api/v1/chat/workflows/{chat_id}/messages", json={"text": f"{i} {text}"}
                )
                assert response.status_code == 201
            reader.join(30)
            elapsed = time.monotonic() - started
        assert [e["entry"]["text"].split()[0] for e in fast_events] == [
            str(i) for i in range(total)
        ]
        assert elapsed < 30, f"fast subscriber needed {elapsed:.1f}s"

        received, code = stuck.drain(timeout=10)
        assert code == 1013
        assert 0 < received < total
        # Coming back with ?since= loses nothing.
        with subscribe(f"{url}?since={received}") as again:
            rest = [json.loads(again.recv(timeout=10)) for _ in range(total - received)]
        assert [e["seq"] for e in rest] == list(range(received + 1, total + 1))


def _post_messages(client: httpx.Client, chat_id: str, texts: list[str]) -> None:
    for text in texts:
        response = client.post(f"/api/v1/chat/workflows/{chat_id}/messages", json={"text": text})
        assert response.status_code == 201, response.text


def test_batch_mode_sends_json_arrays_of_consecutive_events(
    server: LiveServer, client: httpx.Client
) -> None:
    chat_id = create_chat(client)
    _post_messages(client, chat_id, [f"before {i}" for i in range(5)])
    url = f"{server.ws_url}/api/v1/chat/workflows/{chat_id}/ws?since=0&batch=true"
    with subscribe(url) as ws:
        # The stored backlog comes as one array (it is small), oldest first.
        replayed = json.loads(ws.recv(timeout=10))
        assert replayed == _stored(client, chat_id)
        assert [e["entry"]["text"] for e in replayed] == [f"before {i}" for i in range(5)]
        # Control answers stay objects.
        ws.send(json.dumps({"type": "ping"}))
        assert json.loads(ws.recv(timeout=10)) == {"type": "pong"}
        # Live events come as arrays too (one or more events each), in order, none twice.
        _post_messages(client, chat_id, [f"live {i}" for i in range(20)])
        live: list[dict[str, Any]] = []
        while len(live) < 20:
            frame = json.loads(ws.recv(timeout=10))
            assert isinstance(frame, list) and frame
            live.extend(frame)
    assert live == _stored(client, chat_id, since=5)
    assert [e["seq"] for e in live] == list(range(6, 26))
    assert [e["entry"]["text"] for e in live] == [f"live {i}" for i in range(20)]


def test_batch_frames_stay_under_the_frame_budget(server: LiveServer, client: httpx.Client) -> None:
    from chatflow.api.websocket import BATCH_FRAME_BYTES

    chat_id = create_chat(client)
    big = "x" * 15_000  # an event carries the text twice (message and entry)
    _post_messages(client, chat_id, [f"{i} {big}" for i in range(12)])
    stored = _stored(client, chat_id)
    frames: list[str] = []
    with subscribe(f"{server.ws_url}/chat/{chat_id}?since=0&batch=true") as ws:
        while sum(len(json.loads(f)) for f in frames) < len(stored):
            frames.append(str(ws.recv(timeout=10)))
    assert len(frames) > 1
    for frame in frames:
        assert len(frame) <= BATCH_FRAME_BYTES + 2 or len(json.loads(frame)) == 1
    assert [e for frame in frames for e in json.loads(frame)] == stored


def test_without_batch_every_event_is_its_own_frame(
    server: LiveServer, client: httpx.Client
) -> None:
    chat_id = create_chat(client)
    _post_messages(client, chat_id, [f"m {i}" for i in range(3)])
    with subscribe(f"{server.ws_url}/chat/{chat_id}?since=0&batch=false") as ws:
        frames = [json.loads(ws.recv(timeout=10)) for _ in range(3)]
    assert frames == _stored(client, chat_id)
