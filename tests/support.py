"""Test helpers: a live server in a thread, spreadsheet builders, small API wrappers."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import psutil
import xlsxwriter
from fastapi import FastAPI
from websockets.sync.client import ClientConnection, connect

from chatflow.cli import build_server
from chatflow.settings import Settings


@dataclass
class LiveServer:
    url: str
    ws_url: str
    settings: Settings
    seed_ws_url: str | None = None  # the second WebSocket port, when settings.ws_port asks for one


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    """Settings for a test server; tests pass these explicitly, never through the environment."""
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": 0,
        # The seed's second WebSocket port is off unless a test asks for a (free) one: parallel
        # test servers must never all try to bind 5051.
        "ws_port": 0,
        "data_dir": data_dir,
        "step_threads": 2,
        "log_level": "warning",
        "shutdown_grace_s": 2.0,
        # Most test servers never run a step; those that do start their worker on first use.
        "prestart_workers": False,
        "prestart_inspections": False,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@contextmanager
def run_server(
    settings: Settings, *, freeze_gc: bool = False, app: FastAPI | None = None
) -> Iterator[LiveServer]:
    """Serve ``settings`` (with ``app``, default ``create_app(settings)``) with real uvicorn on
    127.0.0.1 in a thread; stop it on exit."""
    server = build_server(settings, freeze_gc=freeze_gc, app=app)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        seed = f"ws://127.0.0.1:{settings.ws_port}" if settings.ws_port else None
        yield LiveServer(f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}", settings, seed)
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        if thread.is_alive():
            raise RuntimeError("test server did not stop")


def free_ports(count: int = 1) -> list[int]:
    """Distinct loopback ports nobody listens on right now (a server binds them a moment later)."""
    with contextlib.ExitStack() as stack:
        probes = [stack.enter_context(socket.socket()) for _ in range(count)]
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in probes]


def wait_until_serving(
    port: int, process: subprocess.Popen[bytes], timeout_s: float, log: Path | None = None
) -> None:
    """Poll a ``chatflow serve`` process's health until it answers 200; raise if it exits
    first or ``timeout_s`` passes (with its log, when there is one)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/health").status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            said = f":\n{log.read_text()}" if log is not None else ""
            raise RuntimeError(f"chatflow serve did not start{said}")
        time.sleep(0.1)


@contextmanager
def chatflow_process(
    data_dir: Path,
    log: Path,
    *,
    port: int,
    ws_port: int = 0,
    env: dict[str, str] | None = None,
    start_timeout_s: float = 60.0,
    stop_timeout_s: float = 40.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """``chatflow serve`` as ``make run`` starts it (the console script, default settings but
    ``env``) on the given ports and data dir; always stopped and reaped, with its children."""
    script = Path(sys.executable).with_name("chatflow")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "chatflow"]
    command += ["serve", "--port", str(port), "--ws-port", str(ws_port), "--data-dir"]
    # Defaults, not whatever CHATFLOW_* the environment running the tests carries.
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CHATFLOW_")}
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [*command, str(data_dir)],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**clean, **(env or {})},
        )
    server = psutil.Process(process.pid)
    children: list[psutil.Process] = []  # its worker and inspection processes
    try:
        wait_until_serving(port, process, start_timeout_s, log)
        children = server.children(recursive=True)
        yield process
    finally:
        with contextlib.suppress(psutil.NoSuchProcess):
            children += server.children(recursive=True)
        if process.poll() is None:
            process.kill()
        process.wait(stop_timeout_s)
        # Its children exit by themselves when the server is gone; do not wait on that.
        _, alive = psutil.wait_procs(children, timeout=10)
        for child in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        psutil.wait_procs(alive, timeout=10)


def numbered_output(base_url: str, source: Path, out: Path) -> list[list[tuple[Any, str]]]:
    """Upload ``source``, run excel/add-column (row numbers) on it, save the output at ``out``;
    its cells as (value, openpyxl data type)."""
    numbering = {"operation": "excel/add-column", "arguments": {"name": "n", "row_number": True}}
    with httpx.Client(base_url=base_url, timeout=120) as client:
        chat_id = create_chat(client)
        upload(client, chat_id, source)
        run = client.post(
            f"/api/v1/chat/workflows/{chat_id}/execute",
            params={"wait": "true"},
            json={"steps": [numbering]},
        ).json()["data"]
        assert run["status"] == "completed", run
        out.write_bytes(client.get(run["outputs"][0]["download_url"]).content)
    sheet = openpyxl.load_workbook(out).active
    return [[(c.value, c.data_type) for c in row] for row in sheet.rows]


def write_xlsx(path: Path, rows: list[list[Any]], sheet: str = "Sheet1") -> Path:
    """A real xlsx: first row is the header; strings stay strings."""
    workbook = xlsxwriter.Workbook(str(path), {"strings_to_numbers": False})
    worksheet = workbook.add_worksheet(sheet)
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            if isinstance(value, str):
                worksheet.write_string(r, c, value)
            elif value is not None:
                worksheet.write(r, c, value)
    workbook.close()
    return path


POSTAL_ROWS = [
    ["name", "postal_code", "city"],
    ["Ana", "01234", "Lisbon"],
    ["Ben", "98765", "Porto"],
    ["Cy", "01234", "Lisbon"],
    ["Dee", "00501", "Holtsville"],
    ["Eve", "98765", "Porto"],
]


def create_chat(client: httpx.Client, title: str | None = None) -> str:
    response = client.post("/api/v1/chat/workflows", json={"title": title} if title else None)
    assert response.status_code == 201, response.text
    return str(response.json()["data"]["chat_id"])


def upload(
    client: httpx.Client, chat_id: str, path: Path, name: str | None = None
) -> httpx.Response:
    with path.open("rb") as handle:
        return client.post(
            f"/api/v1/chat/workflows/{chat_id}/upload",
            files={"file": (name or path.name, handle)},
        )


def seed_workflow(columns: list[str] | None = None, **arguments: Any) -> dict[str, Any]:
    """The seed's execute request body."""
    args: dict[str, Any] = {"columns": columns or ["postal_code"], "remove_duplicates": True}
    args.update(arguments)
    return {"steps": [{"operation": "excel/extract-columns-to-file", "arguments": args}]}


@contextmanager
def subscribe(url: str) -> Iterator[ClientConnection]:
    with connect(url, open_timeout=10, close_timeout=5) as ws:
        yield ws


def receive_until(
    ws: ClientConnection, final: set[str], timeout: float = 30
) -> list[dict[str, Any]]:
    """Events until one whose type is in ``final`` (inclusive)."""
    received = []
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no {final} event; got {[e['type'] for e in received]}")
        event = json.loads(ws.recv(timeout=remaining))
        received.append(event)
        if event.get("type") in final:
            return received


def raw_get(base: str, target: str) -> tuple[int, str]:
    """GET with the request target exactly as given (clients normalise dot segments)."""
    host, port = base.removeprefix("http://").split(":")
    connection = HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request("GET", target)
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        connection.close()


def kill_group(pgid: int) -> None:
    """SIGKILL every process of group ``pgid`` (a LibreOffice and its helpers)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def group_alive(pgid: int, wait_s: float = 5.0) -> bool:
    """Whether any process is still in group ``pgid`` after up to ``wait_s`` seconds."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        if time.monotonic() > deadline:
            return True
        time.sleep(0.05)


REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIR = REPO_ROOT / "src" / "chatflow"


def folder_files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder``, by its path inside it."""
    files = (path for path in folder.rglob("*") if path.is_file())
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in files}


def wheel_files(dest: Path, folder: Path) -> dict[str, bytes]:
    """Build the project's wheel into ``dest`` and return what it ships of the package's
    ``folder``, by path inside that folder.  No build isolation: hatchling is a test extra, so
    the build needs no network."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
        + ["-w", str(dest), str(REPO_ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = dest.glob("chatflow-*.whl")
    prefix = f"chatflow/{folder.relative_to(PACKAGE_DIR).as_posix()}/"
    with zipfile.ZipFile(wheel) as archive:
        return {
            name.removeprefix(prefix): archive.read(name)
            for name in archive.namelist()
            if name.startswith(prefix)
        }
