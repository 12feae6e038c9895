"""A real chatflow server for the bench, started as the tests start one, and the API calls the
phases make on it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from tests.support import chatflow_process, create_chat, free_ports, upload

API = "/api/v1"
# Default settings but the log level: an info line per request would cost the server CPU.
QUIET = {"CHATFLOW_LOG_LEVEL": "warning"}


@dataclass(frozen=True)
class Server:
    url: str
    ws_url: str
    pid: int


@contextlib.contextmanager
def serve(work: Path, name: str) -> Iterator[Server]:
    """``chatflow serve`` in its own process (the bench's clients never share its GIL) with
    default settings on a free loopback port, data dir ``work/name``; always stopped."""
    (port,) = free_ports(1)
    with chatflow_process(work / name, work / f"{name}.log", port=port, env=QUIET) as process:
        yield Server(f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}", process.pid)


def check(response: httpx.Response, *expected: int) -> Any:
    """The ``data`` of a response with one of the ``expected`` statuses, else an error."""
    if response.status_code not in expected:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path} -> "
            f"{response.status_code}: {response.text[:500]}"
        )
    return response.json()["data"] if response.content else None


def chat_with(client: httpx.Client, title: str, path: Path, name: str) -> str:
    """A new chat holding the file ``path`` as ``name``."""
    chat = create_chat(client, title)
    check(upload(client, chat, path, name), 201)
    return chat


def server_timing(response: httpx.Response) -> dict[str, float]:
    """The ``dur`` of each ``Server-Timing`` metric, in ms."""
    timing = {}
    for metric in response.headers.get("server-timing", "").split(","):
        name, *params = (part.strip() for part in metric.split(";"))
        durations = [float(p[4:]) for p in params if p.startswith("dur=")]
        if name and durations:
            timing[name] = durations[0]
    return timing


@dataclass(frozen=True)
class Timed:
    seconds: float
    rows_out: int
    inside_s: float  # the steps' own time inside the server


def through_api(client: httpx.Client, chat: str, steps: list[dict[str, Any]], source: str) -> Timed:
    """Wall time of ``POST .../execute?wait=true`` on the chat's file ``source``."""
    started = time.perf_counter()
    response = client.post(
        f"{API}/chat/workflows/{chat}/execute",
        params={"wait": "true", "timeout": 3600},
        json={"input": source, "steps": steps},
    )
    elapsed = time.perf_counter() - started
    run = check(response, 200)
    if run.get("status") != "completed":
        raise RuntimeError(f"the run ended {run.get('status')!r}: {run.get('error')}")
    inside = sum((step.get("duration_ms") or 0) for step in run["steps"]) / 1000
    rows = int(run["outputs"][-1]["row_count"]) if run["outputs"] else -1
    return Timed(elapsed, rows, inside)
