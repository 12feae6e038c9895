"""``deploy/cluster.py`` (``make cluster``): 2 API processes and 2 workers behind HAProxy, driven
through the balancer only, then stopped with SIGINT, leaving no process behind."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
import psutil
import pytest

from tests.postgres import PostgresDatabases, unavailable
from tests.redis_service import RedisServer
from tests.support import create_chat, free_ports, receive_until, subscribe, upload

pytestmark = pytest.mark.slow

LAUNCHER = Path(__file__).resolve().parents[2] / "deploy" / "cluster.py"
API = "/api/v1"
READY_LINE = re.compile(r"ready: (http://\S+)")


@dataclass
class Launched:
    """The launcher, its output line by line, and the processes it started."""

    process: subprocess.Popen[bytes]
    lines: queue.Queue[str]
    reader: threading.Thread
    data_dir: Path
    tree: list[psutil.Process] = field(default_factory=list)

    def wait_for_url(self) -> str:
        """The URL the launcher prints once the balancer answers ready."""
        seen: list[str] = []
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            seen.append(line)
            if match := READY_LINE.search(line):
                return match.group(1)
        tails = [
            f"--- {log.name}:\n{log.read_text(errors='replace')[-2000:]}" for log in self.logs()
        ]
        raise AssertionError(
            f"the launcher printed no URL (exit {self.process.poll()}):\n{''.join(seen)}"
            + "\n".join(tails)
        )

    def logs(self) -> list[Path]:
        return sorted((self.data_dir / "logs").glob("*.log"))

    def rest_of_output(self) -> list[str]:
        self.reader.join(10)
        return list(self.lines.queue)


def _read(stream: IO[bytes], into: queue.Queue[str]) -> None:
    for raw in iter(stream.readline, b""):
        into.put(raw.decode(errors="replace"))


@contextlib.contextmanager
def _cluster(env: dict[str, str], ports: list[int], data_dir: Path) -> Iterator[Launched]:
    command = [sys.executable, str(LAUNCHER), "--lb-port", str(ports[0])]
    command += ["--api-ports", f"{ports[1]},{ports[2]}", "--data-dir", str(data_dir)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    assert process.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=_read, args=(process.stdout, lines), daemon=True)
    reader.start()
    launched = Launched(process, lines, reader, data_dir)
    try:
        yield launched
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)
        for child in launched.tree:  # only when the test failed: the launcher stopped them
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def cluster_env(postgres: PostgresDatabases, redis_server: RedisServer) -> dict[str, str]:
    """The tests' environment without its CHATFLOW_* settings (PYTHONPATH stays, so the
    processes import this tree's chatflow), on a fresh database and this session's Redis."""
    if shutil.which("haproxy") is None and not Path("/usr/sbin/haproxy").exists():
        unavailable("haproxy is not installed (Debian: apt-get install haproxy)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATFLOW_")}
    return env | {
        "CHATFLOW_DATABASE_URL": postgres.fresh(),
        "CHATFLOW_REDIS_URL": redis_server.url(),
        "CHATFLOW_REDIS_PREFIX": redis_server.prefix,
        # Two cores shared by six processes: one step process and one inspection each.
        "CHATFLOW_WORKER_PROCESSES": "1",
        "CHATFLOW_INSPECT_PROCESSES": "1",
        "CHATFLOW_LOG_LEVEL": "warning",
    }


def test_cluster_serves_through_the_balancer_and_stops_on_sigint(
    cluster_env: dict[str, str], tmp_path: Path
) -> None:
    source = tmp_path / "postal.csv"
    source.write_text("city,postal_code\nA,1000\nB,2000\nC,1000\n", encoding="utf-8")
    ports = free_ports(3)

    with _cluster(cluster_env, ports, tmp_path / "data") as cluster:
        launcher = cluster.process
        url = cluster.wait_for_url()
        assert url == f"http://127.0.0.1:{ports[0]}"
        cluster.tree += psutil.Process(launcher.pid).children(recursive=True)
        names = [" ".join(p.cmdline()) for p in psutil.Process(launcher.pid).children()]
        assert sum("haproxy" in n for n in names) == 1, names
        assert sum("--role api" in n for n in names) == 2, names
        assert sum(" worker " in f"{n} " for n in names) == 2, names

        with httpx.Client(base_url=url, timeout=120) as client:
            chat_id = create_chat(client, "through the balancer")
            chat = client.get(f"{API}/chat/workflows/{chat_id}").json()["data"]
            # Links name the balancer, not the API process that answered.
            assert chat["websocket_url"] == f"ws://127.0.0.1:{ports[0]}/chat/{chat_id}"
            with subscribe(f"{chat['websocket_url']}?since=0") as ws:
                uploaded = upload(client, chat_id, source)
                assert uploaded.status_code == 201, uploaded.text
                (info,) = uploaded.json()["data"]
                assert info["download_url"].startswith(f"{url}{API}/chat/workflows/{chat_id}/")
                arguments = {"columns": ["postal_code"], "remove_duplicates": True}
                step = {"operation": "excel/extract-columns-to-file", "arguments": arguments}
                run = client.post(
                    f"{API}/chat/workflows/{chat_id}/execute",
                    params={"wait": "true"},
                    json={"steps": [step]},
                )
                assert run.status_code == 200, run.text
                assert run.json()["data"]["status"] == "completed", run.text
                events = receive_until(ws, {"workflow_completed", "workflow_failed"}, timeout=60)
            stored = client.get(f"{API}/chat/workflows/{chat_id}/events", params={"since": 0})
        assert events[-1]["type"] == "workflow_completed"
        seqs = [event["seq"] for event in events]
        assert seqs == list(range(1, len(seqs) + 1)), seqs
        assert events == stored.json()["data"][: len(events)]

        launcher.send_signal(signal.SIGINT)
        assert launcher.wait(90) == 0
        _, alive = psutil.wait_procs(cluster.tree, timeout=10)
        assert not [p for p in alive if _alive(p)], alive
        assert "cluster: stopped\n" in cluster.rest_of_output()


def test_a_process_that_dies_is_named_and_the_rest_are_stopped(
    cluster_env: dict[str, str], tmp_path: Path
) -> None:
    with _cluster(cluster_env, free_ports(3), tmp_path / "data") as cluster:
        cluster.wait_for_url()
        children = psutil.Process(cluster.process.pid).children()
        cluster.tree += psutil.Process(cluster.process.pid).children(recursive=True)
        victim = next(c for c in children if "worker" in c.cmdline())
        victim.kill()
        assert cluster.process.wait(90) == 1
        _, alive = psutil.wait_procs(cluster.tree, timeout=10)
        assert not [p for p in alive if _alive(p)], alive
        output = "".join(cluster.rest_of_output())
        assert re.search(r"cluster: worker-[12] exited with code -9 \(log ", output), output
        assert "cluster: stopped" in output, output
