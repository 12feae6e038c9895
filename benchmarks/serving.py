"""A real chatflow server in a child process, a baseline tree to serve from, and the API calls.

The child (``python -m benchmarks.serving``) serves with ``tests.support.run_server``, the
launcher the tests use, so the bench starts servers exactly as the tests do; it runs in its own
process so that the bench's clients never share the server's interpreter (or its GIL). It
stops when its stdin closes, which also happens if the bench itself dies. A server runs from a
tree (``root``): this one, or a baseline commit unpacked by ``checkout``, whose own
``benchmarks.serving``, ``tests.support`` and ``src`` then serve with the same venv.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import selectors
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

API = "/api/v1"
REPO = Path(__file__).resolve().parent.parent
READY = "serving "
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 40.0


@dataclass(frozen=True)
class Server:
    url: str
    ws_url: str
    pid: int


def tree_env(root: Path, code: Path | None = None) -> dict[str, str]:
    """The environment of a child that runs ``root``'s ``chatflow`` (its ``src`` first on the
    path) and ``code``'s ``benchmarks`` and ``tests`` (default: ``root``'s), with default settings
    (the caller's CHATFLOW_* variables are not passed on)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATFLOW_")}
    return {**env, "PYTHONPATH": os.pathsep.join([str(root / "src"), str(code or root)])}


def checkout(ref: str, work: Path) -> tuple[Path, str]:
    """The tree of git ``ref`` unpacked under ``work`` (``git archive``: no worktree to remove,
    it goes with ``work``), and its commit; a child run with ``tree_env`` imports it."""

    def git(*args: str) -> bytes:
        return subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, check=True
        ).stdout

    commit = git("rev-parse", "--short", f"{ref}^{{commit}}").decode().strip()
    dest = work / f"baseline-{commit}"
    with tarfile.open(fileobj=io.BytesIO(git("archive", commit))) as tar:
        tar.extractall(dest, filter="data")
    probe = [sys.executable, "-c", "import chatflow; print(chatflow.__file__)"]
    where = subprocess.run(probe, env=tree_env(dest), capture_output=True, check=True, text=True)
    if not where.stdout.startswith(str(dest)):  # an installed chatflow would shadow the baseline
        raise RuntimeError(f"the baseline's child imports {where.stdout.strip()}, not {dest}")
    return dest, commit


@dataclass(frozen=True)
class Tree:
    """The code measured: this tree (key "") or a baseline commit (key "_base")."""

    key: str  # the suffix of its figure keys
    label: str
    root: Path


@dataclass(frozen=True)
class Side:
    """A tree's server and a client of it."""

    tree: Tree
    server: Server
    client: httpx.Client


@contextlib.contextmanager
def serve_side(tree: Tree, work: Path) -> Iterator[Side]:
    """A default server of ``tree`` (data and log under ``work``) and a client of it."""
    with (
        serve(work / f"data{tree.key}", work / f"server{tree.key}.log", root=tree.root) as server,
        httpx.Client(base_url=server.url, timeout=None) as client,
    ):
        yield Side(tree, server, client)


@contextlib.contextmanager
def serve(
    data_dir: Path, log_path: Path, *, root: Path = REPO, **settings: str
) -> Iterator[Server]:
    """A server of the tree ``root`` on a free loopback port with default settings but
    ``settings``; always stopped."""
    command = [sys.executable, "-m", "benchmarks.serving", str(data_dir), json.dumps(settings)]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            env=tree_env(root),
            cwd=root,
            text=True,
        )
        try:
            line = read_line(proc, START_TIMEOUT_S)
            if not line.startswith(READY):
                tail = log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"the server did not start: {line!r}\n{tail}")
            url = line.removeprefix(READY).strip()
            yield Server(url, "ws" + url.removeprefix("http"), proc.pid)
        finally:
            _stop(proc)


def read_line(proc: subprocess.Popen[str], timeout_s: float) -> str:
    """The child's next stdout line, or an error after ``timeout_s``."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout_s):
            raise TimeoutError(f"{proc.args!r} did not answer in {timeout_s:.0f} s")
    return proc.stdout.readline()


def _stop(proc: subprocess.Popen[str]) -> None:
    """Close its stdin (it shuts down), kill it if it takes too long, then its leftovers."""
    children: list[psutil.Process] = []
    with contextlib.suppress(psutil.Error):
        children = psutil.Process(proc.pid).children(recursive=True)
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.kill()


def main(argv: list[str]) -> int:
    """The child: serve until stdin closes."""
    from tests.support import run_server

    from chatflow.settings import Settings

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    data_dir, overrides = Path(argv[0]), json.loads(argv[1])
    settings = Settings(
        host="127.0.0.1", port=0, ws_port=0, data_dir=data_dir, log_level="warning", **overrides
    )
    with run_server(settings, freeze_gc=True) as live:
        sys.stdout.write(f"{READY}{live.url}\n")
        sys.stdout.flush()
        sys.stdin.read()
    return 0


# --- the API ------------------------------------------------------------------------------------


def check(response: httpx.Response, *expected: int) -> Any:
    """The ``data`` of a response with one of the ``expected`` statuses, else an error."""
    if response.status_code not in expected:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path} -> "
            f"{response.status_code}: {response.text[:500]}"
        )
    return response.json()["data"] if response.content else None


def create_chat(client: httpx.Client, title: str) -> str:
    return str(check(client.post(f"{API}/chat/workflows", json={"title": title}), 201)["chat_id"])


def upload_file(client: httpx.Client, chat_id: str, path: Path, name: str) -> httpx.Response:
    """A 201 upload of one file (else an error)."""
    with path.open("rb") as fh:
        files = {"file": (name, fh, "application/octet-stream")}
        response = client.post(f"{API}/chat/workflows/{chat_id}/upload", files=files)
    check(response, 201)
    return response


def server_timing(response: httpx.Response) -> dict[str, float]:
    """The ``dur`` of each ``Server-Timing`` metric, in ms (none from servers without it)."""
    timing = {}
    for metric in response.headers.get("server-timing", "").split(","):
        name, *params = (part.strip() for part in metric.split(";"))
        durations = [float(p[4:]) for p in params if p.startswith("dur=")]
        if name and durations:
            timing[name] = durations[0]
    return timing


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
