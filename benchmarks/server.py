"""A real chatflow server in a subprocess on a free loopback port, and a thin API client."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 40.0
API = "/api/v1"


def free_port() -> int:
    """A port nobody listens on right now (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    url: str
    ws_url: str
    pid: int
    data_dir: Path

    def process(self) -> psutil.Process:
        return psutil.Process(self.pid)


def _server_env() -> dict[str, str]:
    """The bench's environment without CHATFLOW_* settings, so the server runs on defaults
    (except the seed's second WebSocket port, off so that servers never collide on 5051)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATFLOW_")}
    return {**env, "CHATFLOW_WS_PORT": "0"}


@contextlib.contextmanager
def run_server(
    data_dir: Path, log_path: Path, settings: dict[str, str] | None = None
) -> Iterator[Server]:
    """Start ``python -m chatflow serve`` and wait for its health check; always stop it.

    ``settings`` are CHATFLOW_* variables for this server (default: none, so defaults)."""
    serve = ["chatflow", "serve", "--log-level", "warning"]
    with child_server(serve, data_dir, log_path, settings) as server:
        yield server


@contextlib.contextmanager
def child_server(
    module_args: list[str],
    data_dir: Path,
    log_path: Path,
    settings: dict[str, str] | None = None,
) -> Iterator[Server]:
    """Run ``python -m MODULE_ARGS --port P --data-dir D`` until healthy; always stop it."""
    port = free_port()
    command = [sys.executable, "-m", *module_args, "--port", str(port), "--data-dir", str(data_dir)]
    url = f"http://127.0.0.1:{port}"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**_server_env(), **(settings or {})},
            cwd=Path(__file__).resolve().parent.parent,
        )
        try:
            _wait_healthy(proc, url, log_path)
            yield Server(url, f"ws://127.0.0.1:{port}", proc.pid, data_dir)
        finally:
            _stop(proc)


def _wait_healthy(proc: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    with httpx.Client(base_url=url, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"server exited with status {proc.returncode}:\n{tail}")
            with contextlib.suppress(httpx.HTTPError):
                if client.get(f"{API}/health").status_code == 200:
                    return
            time.sleep(0.1)
    raise RuntimeError(f"server not healthy after {START_TIMEOUT_S:.0f} s (log: {log_path})")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, wait, SIGKILL if need be; then any child it left (inspection sandboxes)."""
    children: list[psutil.Process] = []
    with contextlib.suppress(psutil.Error):
        children = psutil.Process(proc.pid).children(recursive=True)
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    for child in children:
        with contextlib.suppress(psutil.Error):
            if child.is_running():
                child.kill()
                child.wait(timeout=5)


# --- API --------------------------------------------------------------------------------------


def check(response: httpx.Response, *expected: int) -> Any:
    """The ``data`` of a response with one of the ``expected`` statuses, else an error."""
    if response.status_code not in expected:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path} -> "
            f"{response.status_code}: {response.text[:500]}"
        )
    return response.json()["data"] if response.content else None


def create_chat(client: httpx.Client, title: str) -> str:
    data = check(client.post(f"{API}/chat/workflows", json={"title": title}), 201)
    return str(data["chat_id"])


def upload_file(client: httpx.Client, chat_id: str, path: Path, name: str | None = None) -> Any:
    with path.open("rb") as fh:
        files = {"file": (name or path.name, fh, "application/octet-stream")}
        response = client.post(f"{API}/chat/workflows/{chat_id}/upload", files=files)
    return check(response, 201)[0]


def execute_wait(
    client: httpx.Client, chat_id: str, steps: list[dict[str, Any]], input_name: str
) -> dict[str, Any]:
    """Run a workflow with ``?wait=true``; the finished run (which must have completed)."""
    body = {"input": input_name, "steps": steps}
    response = client.post(
        f"{API}/chat/workflows/{chat_id}/execute",
        params={"wait": "true", "timeout": 3600},
        json=body,
    )
    run = check(response, 200)
    if run.get("status") != "completed":
        raise RuntimeError(
            f"?wait=true answered 200 with the run {run.get('status')!r} "
            f"(error: {run.get('error')}); see the server log"
        )
    return dict(run)


def operations(client: httpx.Client) -> dict[str, dict[str, Any]]:
    return {op["name"]: op for op in check(client.get(f"{API}/operations"), 200)}


def dry_run(
    client: httpx.Client, chat_id: str, steps: list[dict[str, Any]], input_name: str
) -> str | None:
    """None if the workflow passes ``?dry_run=true`` (on a sample), else the error message."""
    response = client.post(
        f"{API}/chat/workflows/{chat_id}/execute",
        params={"dry_run": "true"},
        json={"input": input_name, "steps": steps},
    )
    if response.status_code == 200:
        return None
    return f"{response.status_code}: {response.text[:400]}"


def delete_chat(client: httpx.Client, chat_id: str) -> None:
    check(client.delete(f"{API}/chat/workflows/{chat_id}"), 204)
