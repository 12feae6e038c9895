"""The seed report's WebSocket client, unchanged, against the second WebSocket port (5051).

The seed's example 2 connects to ``ws://127.0.0.1:5051/chat/{chat_id}``; ``chatflow serve``
also listens there (``--ws-port`` / ``CHATFLOW_WS_PORT``), serving the same app as 5050.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import psutil
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin

from tests.support import (
    POSTAL_ROWS,
    chatflow_process,
    create_chat,
    free_ports,
    make_settings,
    run_server,
    seed_workflow,
    subscribe,
    upload,
    write_xlsx,
)

API = "/api/v1"

# Copied verbatim from the seed report (chat-workflows-fixes.md, "Example 2: Real-time Workflow
# Updates", "Terminal 1 - Connect WebSocket", the python block), blank lines' indentation
# included. The project carries the copy; test_the_copy_is_the_seed_text checks it against the
# report when CHATFLOW_SEED_REPORT names where a copy of the report is.
SEED_EXAMPLE_2_CLIENT = """\
import asyncio
import websockets
import json

async def watch_workflow():
    uri = "ws://127.0.0.1:5051/chat/abc-123"
    async with websockets.connect(uri) as ws:
        print("✅ Connected to WebSocket")
        
        async for message in ws:
            data = json.loads(message)
            print(f"📨 {data['type']}: {data.get('message', '')}")
            
            if data['type'] == 'workflow_completed':
                print("✅ Workflow done!")
                break

asyncio.run(watch_workflow())
"""  # noqa: W293 (the seed's blank lines carry indentation)


CLIENT_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 40.0


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _close_code(ws: ClientConnection, timeout: float = 30) -> int:
    with pytest.raises(ConnectionClosed) as closed:
        while True:  # anything sent before the close frame is not what this waits for
            ws.recv(timeout=timeout)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


def _read_lines(stream: object, lines: queue.Queue[str | None]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        lines.put(line.rstrip("\n"))
    lines.put(None)


def test_the_copy_is_the_seed_text() -> None:
    named = os.environ.get("CHATFLOW_SEED_REPORT")
    if not named:
        pytest.skip("CHATFLOW_SEED_REPORT is not set (the seed report's path, for this check)")
    report = Path(named).read_text(encoding="utf-8")
    example = report[report.index("### Example 2: Real-time Workflow Updates") :]
    match = re.search(r"```python\n(.*?)```", example, re.DOTALL)
    assert match is not None
    assert match.group(1) == SEED_EXAMPLE_2_CLIENT


def test_seed_example_2_client_runs_unchanged_against_chatflow_serve(tmp_path: Path) -> None:
    port, ws_port = free_ports(2)
    assert SEED_EXAMPLE_2_CLIENT.count("abc-123") == 1
    assert SEED_EXAMPLE_2_CLIENT.count("5051") == 1
    log = tmp_path / "server.log"
    with (
        chatflow_process(
            tmp_path / "data", log, port=port, ws_port=ws_port, stop_timeout_s=STOP_TIMEOUT_S
        ) as server,
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http,
    ):
        health = http.get(f"{API}/health").json()["data"]
        assert health["websocket_url"] == f"ws://127.0.0.1:{port}/chat/{{chat_id}}"
        assert health["websocket_seed_url"] == f"ws://127.0.0.1:{ws_port}/chat/{{chat_id}}"

        chat_id = create_chat(http)
        source = write_xlsx(tmp_path / "data.xlsx", POSTAL_ROWS)
        assert upload(http, chat_id, source).status_code == 201

        # The seed's client, with only its chat id and (a free port for) 5051 substituted.
        code = SEED_EXAMPLE_2_CLIENT.replace("abc-123", chat_id).replace("5051", str(ws_port))
        client = subprocess.Popen(
            [sys.executable, "-u", "-c", code],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            encoding="utf-8",
            env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        )
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=_read_lines, args=(client.stdout, lines), daemon=True).start()
        output: list[str] = []
        try:
            # Events published after the client's handshake reach it: run once it says so.
            deadline = time.monotonic() + CLIENT_TIMEOUT_S
            while not output or output[-1] != "✅ Connected to WebSocket":
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
                assert line is not None, f"client ended before connecting: {output}"
                output.append(line)
            response = http.post(f"{API}/chat/workflows/{chat_id}/execute", json=seed_workflow())
            assert response.status_code == 202, response.text
            client.wait(timeout=max(0.0, deadline - time.monotonic()))
            while (line := lines.get(timeout=10)) is not None:
                output.append(line)
        finally:
            if client.poll() is None:
                client.kill()
            client.wait(10)
        assert client.returncode == 0, "\n".join(output)
        # The seed's "Terminal 1 Output", in order (chatflow sends a few more progress events).
        expected = [
            "✅ Connected to WebSocket",
            "📨 workflow_started: ",
            "📨 progress: Starting step execution",
            "📨 progress: Processing column 'postal_code'",
            "📨 progress: Step completed successfully",
            "📨 workflow_completed: ",
            "✅ Workflow done!",
        ]
        seen = iter(output)
        for want in expected:
            assert any(line.startswith(want) for line in seen), (want, output)
        assert output[-1] == "✅ Workflow done!"

        # Shutdown (SIGTERM, as from `make run`'s Ctrl+C or `kill`) drains first on both
        # ports: subscribers on 5050 and on the second port get 1001, then both close.
        with (
            subscribe(f"ws://127.0.0.1:{port}/chat/{chat_id}") as on_port,
            subscribe(f"ws://127.0.0.1:{ws_port}/chat/{chat_id}") as on_ws_port,
        ):
            workers = psutil.Process(server.pid).children(recursive=True)
            assert workers, "chatflow serve starts its worker processes"
            server.send_signal(signal.SIGTERM)
            assert _close_code(on_port) == 1001
            assert _close_code(on_ws_port) == 1001
        server.wait(STOP_TIMEOUT_S)
        _, alive = psutil.wait_procs(workers, timeout=10)
        assert alive == [], "worker processes left behind"
        assert not _listening(port) and not _listening(ws_port)
        text = log.read_text(encoding="utf-8", errors="replace")
        assert "Finished server process" in text, text
        assert "Traceback" not in text, text


def test_second_port_is_the_same_app_with_the_same_rules(tmp_path: Path) -> None:
    """Keys, Origin checks, events and the shutdown 1001 are those of the main port."""
    (ws_port,) = free_ports(1)
    key = "k-" + "a" * 30
    settings = make_settings(tmp_path / "data", api_keys=key, ws_port=ws_port)
    with ExitStack() as serving:
        live = serving.enter_context(run_server(settings))
        headers = {"Authorization": f"Bearer {key}"}
        http = serving.enter_context(httpx.Client(base_url=live.url, timeout=30, headers=headers))
        assert live.seed_ws_url == f"ws://127.0.0.1:{ws_port}"
        chat_id = create_chat(http)
        url = f"{live.seed_ws_url}/chat/{chat_id}"
        with connect(f"{url}?token=nope", open_timeout=10) as ws:
            assert _close_code(ws, timeout=10) == 4401
        evil = Origin("http://evil.example")
        with connect(f"{url}?token={key}", open_timeout=10, origin=evil) as ws:
            assert _close_code(ws, timeout=10) == 4403
        # Plain HTTP answers on the second port as well: it is the same app.
        seed_http = f"http://127.0.0.1:{ws_port}{API}"
        health = httpx.get(f"{seed_http}/health", headers=headers).json()["data"]
        assert health["websocket_seed_url"] == f"ws://127.0.0.1:{ws_port}/chat/{{chat_id}}"
        assert httpx.get(f"{seed_http}/chat/workflows").status_code == 401

        with connect(f"{url}?token={key}", open_timeout=10) as ws:
            http.post(f"{API}/chat/workflows/{chat_id}/messages", json={"text": "hi"})
            assert json.loads(ws.recv(timeout=10))["type"] == "message_added"
            # Stopping the server drains first, so this subscriber gets 1001, not uvicorn's 1012.
            serving.close()
            assert _close_code(ws, timeout=10) == 1001
    assert not _listening(ws_port)
