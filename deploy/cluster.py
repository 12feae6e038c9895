"""A chatflow cluster on one machine: 2 API processes and N workers behind HAProxy.

Usage (``make cluster`` runs it with the defaults)::

    python deploy/cluster.py [--lb-port 8080] [--api-ports 5061,5062] [--workers 2]
                             [--data-dir ./data-cluster]

It uses CHATFLOW_DATABASE_URL (default: the ``chatflow_cluster`` database on the local
PostgreSQL, created if missing) and CHATFLOW_REDIS_URL (default redis://127.0.0.1:6379/0);
every other CHATFLOW_* variable in its environment reaches the processes as is. It migrates
the database once, starts everything, waits until the balancer answers ready, prints the URL
and runs until Ctrl-C or SIGTERM; then it stops everything and exits 0. If a process dies on
its own, it says which, stops the rest and exits 1. Each process's output goes to
``<data dir>/logs/``.

Standard library only, beside asyncpg (a chatflow dependency) to create the database.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

DEPLOY = Path(__file__).resolve().parent
DEFAULT_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/chatflow_cluster"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
READY = "/api/v1/health/ready"
# A stopping API process drains its runs for CHATFLOW_SHUTDOWN_GRACE_S (10 s) and closes its
# sockets; past this bound whatever is left of its process group is killed.
STOP_BOUND_S = 30.0
PR_SET_PDEATHSIG = 1


@dataclass
class Child:
    """One process of the cluster, in a process group of its own."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path


def log(message: str) -> None:
    print(f"cluster: {message}", flush=True)  # noqa: T201 (the launcher's interface)


def chatflow_command() -> list[str]:
    """The chatflow console script next to this interpreter, else ``python -m chatflow``."""
    script = Path(sys.executable).with_name("chatflow")
    return [str(script)] if script.exists() else [sys.executable, "-m", "chatflow"]


def ensure_database(url: str) -> None:
    """Create the PostgreSQL database ``url`` names if it does not exist yet."""
    import asyncpg  # chatflow's PostgreSQL driver, installed with it

    parts = urllib.parse.urlsplit(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    name = urllib.parse.unquote(parts.path.lstrip("/"))
    if parts.scheme != "postgresql" or not name:
        return  # SQLite, or no database named: nothing to create

    async def create() -> None:
        admin = urllib.parse.urlunsplit(parts._replace(path="/postgres", query=""))
        conn = await asyncpg.connect(admin, timeout=10)
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
                quoted = name.replace('"', '""')
                await conn.execute(f'CREATE DATABASE "{quoted}"')
                log(f"created database {name}")
        finally:
            await conn.close()

    asyncio.run(create())


def _die_with_parent() -> None:
    """In the child, before exec: be sent SIGTERM if the launcher dies without stopping us."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def start(name: str, command: list[str], env: dict[str, str], logs: Path) -> Child:
    """Start ``command`` in a new session (so a terminal's Ctrl-C reaches only the launcher,
    which stops the children in order), its output appended to ``logs/<name>.log``."""
    path = logs / f"{name}.log"
    with path.open("ab") as out:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    log(f"started {name} (pid {process.pid}, log {path})")
    return Child(name, process, path)


def signal_group(child: Child, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.process.pid, signum)


def stop(children: list[Child]) -> None:
    """SIGTERM each child's process group, the balancer first; SIGKILL what is left after
    STOP_BOUND_S; reap them all."""
    for child in children:
        signal_group(child, signal.SIGTERM)
    deadline = time.monotonic() + STOP_BOUND_S
    for child in children:
        try:
            child.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log(f"{child.name} did not stop within {STOP_BOUND_S:.0f} s: killing it")
    for child in children:
        # Also the group's stragglers (a worker's or inspection child) whose leader is gone.
        signal_group(child, signal.SIGKILL)
        child.process.wait()


def dead(children: list[Child]) -> Child | None:
    return next((c for c in children if c.process.poll() is not None), None)


def is_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + READY, timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def wait_ready(
    urls: list[str], children: list[Child], timeout_s: float, stopping: list[int]
) -> Child | None:
    """Wait until every URL answers ready, or a stop signal comes; a child that exits
    meanwhile is returned."""
    deadline = time.monotonic() + timeout_s
    pending = list(urls)
    while pending and not stopping:
        if (gone := dead(children)) is not None:
            return gone
        if time.monotonic() > deadline:
            raise TimeoutError(f"not ready after {timeout_s:.0f} s: {', '.join(pending)}")
        pending = [url for url in pending if not is_ready(url)]
        time.sleep(0.2)
    return None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="where everything listens")
    parser.add_argument("--lb-port", type=int, default=8080, help="the balancer's port")
    parser.add_argument("--api-ports", default="5061,5062", help="the 2 API processes' ports")
    parser.add_argument("--workers", type=int, default=2, help="run worker processes")
    parser.add_argument("--data-dir", type=Path, default=Path("./data-cluster"))
    parser.add_argument("--ready-timeout", type=float, default=120.0, help="seconds")
    args = parser.parse_args(argv)
    args.api_ports = [int(port) for port in args.api_ports.split(",")]
    if len(args.api_ports) != 2:
        parser.error("--api-ports takes two ports (deploy/haproxy.cfg has two servers)")
    return args


def environment(args: argparse.Namespace) -> dict[str, str]:
    """What every process gets: this environment with the cluster's shared settings."""
    env = dict(os.environ)
    env.setdefault("CHATFLOW_DATABASE_URL", DEFAULT_DATABASE_URL)
    env.setdefault("CHATFLOW_REDIS_URL", DEFAULT_REDIS_URL)
    env["CHATFLOW_DATA_DIR"] = str(args.data_dir)
    # The balancer lets through what the largest upload needs, plus its multipart envelope.
    upload_mb = int(env.get("CHATFLOW_MAX_UPLOAD_MB", "100"))
    env["CHATFLOW_LB_BIND"] = f"{args.host}:{args.lb_port}"
    env["CHATFLOW_LB_MAX_BODY_BYTES"] = str((upload_mb + 1) * 1024 * 1024)
    for number, port in enumerate(args.api_ports, start=1):
        env[f"CHATFLOW_API{number}"] = f"127.0.0.1:{port}"
    return env


def launch(args: argparse.Namespace, env: dict[str, str], logs: Path) -> list[Child]:
    """The balancer first in the list (stopped first), then the API processes and workers."""
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    config = str(DEPLOY / "haproxy.cfg")
    children = [start("haproxy", [haproxy, "-db", "-f", config], env, logs)]
    chatflow = chatflow_command()
    common = ["--data-dir", env["CHATFLOW_DATA_DIR"], "--database-url"]
    common.append(env["CHATFLOW_DATABASE_URL"])
    for port in args.api_ports:
        command = [*chatflow, "serve", "--role", "api", "--host", "127.0.0.1"]
        command += ["--port", str(port), "--ws-port", "0", *common]
        children.append(start(f"api-{port}", command, env, logs))
    for number in range(1, args.workers + 1):
        children.append(start(f"worker-{number}", [*chatflow, "worker", *common], env, logs))
    return children


def run(args: argparse.Namespace) -> int:
    env = environment(args)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    args.data_dir = args.data_dir.resolve()
    env["CHATFLOW_DATA_DIR"] = str(args.data_dir)
    logs = args.data_dir / "logs"
    logs.mkdir(exist_ok=True)
    try:
        ensure_database(env["CHATFLOW_DATABASE_URL"])
    except Exception as exc:  # asyncpg's errors have no common base with OSError
        log(f"cannot create the database of CHATFLOW_DATABASE_URL: {exc!r}")
        return 1
    upgrade = [*chatflow_command(), "db", "upgrade", "--data-dir", str(args.data_dir)]
    upgrade += ["--database-url", env["CHATFLOW_DATABASE_URL"]]
    if (code := subprocess.run(upgrade, env=env, check=False).returncode) != 0:
        log(f"chatflow db upgrade failed (exit {code})")
        return 1

    stopping: list[int] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda number, _frame: stopping.append(number))
    children = launch(args, env, logs)
    url = f"http://{args.host}:{args.lb_port}"
    try:
        apis = [f"http://127.0.0.1:{port}" for port in args.api_ports]
        gone = wait_ready([*apis, url], children, args.ready_timeout, stopping)
        if gone is None and not stopping:
            log(f"ready: {url} (stop with Ctrl-C)")
        while gone is None and not stopping:
            time.sleep(0.2)
            gone = dead(children)
    except TimeoutError as exc:
        log(f"{exc}; stopping (logs in {logs})")
        stop(children)
        return 1
    if gone is not None:
        log(f"{gone.name} exited with code {gone.process.returncode} (log {gone.log}); stopping")
    else:
        log(f"{signal.Signals(stopping[0]).name}: stopping")
    stop(children)
    log("stopped")
    return 1 if gone is not None else 0


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
