"""A cluster for the tests: API processes (``chatflow serve --role api``) and workers
(``chatflow worker``) on one PostgreSQL database, one Redis and one files directory, each a
real process that a test may kill with SIGKILL and start again."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from tests.support import free_ports, wait_until_serving


@dataclass
class Member:
    name: str
    command: list[str]
    log: Path
    port: int | None = None  # API processes only
    process: subprocess.Popen[bytes] | None = None
    log_offset: int = 0  # where this start's lines begin in ``log`` (a restart appends)
    children: list[psutil.Process] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


class Cluster:
    """``apis`` API processes and ``workers`` workers; ``stop`` ends and reaps every one."""

    def __init__(self, home: Path, env: dict[str, str], *, apis: int = 2, workers: int = 2) -> None:
        script = Path(sys.executable).with_name("chatflow")
        base = [str(script)] if script.exists() else [sys.executable, "-m", "chatflow"]
        clean = {k: v for k, v in os.environ.items() if not k.startswith("CHATFLOW_")}
        # Each process has a data dir of its own; the files directory is the one they share.
        self.files_dir = home / "files"
        self.env = {**clean, "CHATFLOW_FILES_DIR": str(self.files_dir), **env}
        self.home = home
        self.apis = [
            Member(
                f"api{i + 1}",
                [
                    *base,
                    "serve",
                    "--role",
                    "api",
                    "--port",
                    str(port),
                    "--ws-port",
                    "0",
                    "--data-dir",
                    str(home / f"api{i + 1}"),
                ],
                home / f"api{i + 1}.log",
                port=port,
            )
            for i, port in enumerate(free_ports(apis))
        ]
        self.workers = [
            Member(
                f"worker{i + 1}",
                [*base, "worker", "--data-dir", str(home / f"worker{i + 1}")],
                home / f"worker{i + 1}.log",
            )
            for i in range(workers)
        ]

    def start(self) -> None:
        for member in [*self.apis, *self.workers]:
            self.launch(member)
        for member in [*self.apis, *self.workers]:
            self.wait_ready(member)

    def launch(self, member: Member, **env: str) -> None:
        """Start ``member``, with ``env`` on top of the cluster's environment."""
        member.log_offset = member.log.stat().st_size if member.log.exists() else 0
        with member.log.open("ab") as log:
            member.process = subprocess.Popen(
                member.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**self.env, **env},
            )

    def wait_ready(self, member: Member, timeout_s: float = 60.0) -> None:
        assert member.process is not None
        if member.port is not None:
            wait_until_serving(member.port, member.process, timeout_s, member.log)
        else:
            deadline = time.monotonic() + timeout_s
            while b"executing runs" not in member.log.read_bytes()[member.log_offset :]:
                if member.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{member.name} did not start:\n{member.log.read_text()}")
                time.sleep(0.1)
        member.children = psutil.Process(member.process.pid).children(recursive=True)

    def restart(self, member: Member, **env: str) -> None:
        self.launch(member, **env)
        self.wait_ready(member)

    def terminate(self, member: Member, timeout_s: float = 30.0) -> int:
        """SIGTERM, as a supervisor stops it; its exit code."""
        assert member.process is not None
        member.process.terminate()
        return member.process.wait(timeout_s)

    def kill(self, member: Member) -> None:
        """SIGKILL: no shutdown code runs (its step processes die with it, PDEATHSIG)."""
        assert member.process is not None
        member.process.send_signal(signal.SIGKILL)
        member.process.wait(10)

    def stop(self) -> None:
        members = [m for m in [*self.apis, *self.workers] if m.process is not None]
        for member in members:
            assert member.process is not None
            if member.process.poll() is None:
                with contextlib.suppress(psutil.NoSuchProcess):
                    member.children += psutil.Process(member.process.pid).children(True)
                member.process.terminate()
        for member in members:
            assert member.process is not None
            try:
                member.process.wait(40)
            except subprocess.TimeoutExpired:
                member.process.kill()
                member.process.wait(10)
        children = [child for member in members for child in member.children]
        _, alive = psutil.wait_procs(children, timeout=10)
        for child in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        psutil.wait_procs(alive, timeout=10)

    def logs(self) -> str:
        return "\n".join(
            f"--- {m.name}\n{m.log.read_text(errors='replace')[-4000:]}"
            for m in [*self.apis, *self.workers]
            if m.log.exists()
        )
