"""The fork server: one interpreter that has imported the inspection, forking a child per upload.

Starting a fresh interpreter costs about 0.14 s of CPU; a burst of 50 uploads on 2 CPUs spent
seconds on that alone.  A fork of an interpreter that has done the imports costs milliseconds,
and the child is still a process of its own: a crafted file that crashes a parser, or leaves
anything behind in memory, costs only that child.  The fork server itself never reads a file.

Protocol.  The server sends one SOCK_SEQPACKET message per child on the fork server's stdin,
carrying two descriptors: a socket that becomes the child's stdin and stdout, and one that
becomes its stderr.  The fork server answers on its stdout, one JSON line per event, in order:
``{"ready": true}`` once imported, ``{"pid": n}`` per fork (in request order) and
``{"exit": n, "code": c}`` when it has reaped a child (``c`` negative for a signal, as
``Popen.returncode``).  The child then behaves as the one-shot child of ``sandbox``: it reads
one JSON request line, prints ``{"began": ...}``, then the verdict, and exits.

Children die with the fork server (PR_SET_PDEATHSIG), which dies with the server the same way
or on EOF of its stdin.  Only the fork server reaps its children, and it reports an exit only
after reaping, so a pid whose exit we have not been told of is still ours to kill.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import signal
import socket
import sys
from collections import deque
from dataclasses import dataclass, field

from chatflow.spreadsheets.sandbox import (
    MAX_STDERR,
    MAX_STDOUT,
    InspectionRejected,
    Verdict,
    began_at,
    child_env,
    interpret_exit,
    package_root,
)

log = logging.getLogger(__name__)

START_TIMEOUT_S = 60.0  # a cold start (no page cache) on a loaded machine imports slowly

# argv: package root, address-space bytes, the server's pid, and optionally Python code that a
# child runs instead of the inspection (the tests' stand-in for a parser that misbehaves).
_FORK_SERVER = """\
import ctypes, json, os, resource, selectors, signal, socket, sys, time
root, memory, server = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
stand_in = sys.argv[4] if len(sys.argv) > 4 else None
resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
prctl = ctypes.CDLL(None).prctl if sys.platform == "linux" else (lambda *a: 0)
prctl(1, 9)
if os.getppid() != server:
    sys.exit(0)
sys.path.insert(0, root)
from chatflow.spreadsheets.inspection import child_main
requests = socket.socket(fileno=0)
me = os.getpid()

def say(**message):
    os.write(1, (json.dumps(message) + "\\n").encode())

def child(io_fd, err_fd):
    prctl(1, 9)
    if os.getppid() != me:
        os._exit(1)
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    requests.close()
    os.dup2(io_fd, 0)
    os.dup2(io_fd, 1)
    os.dup2(err_fd, 2)
    os.close(io_fd)
    os.close(err_fd)
    if stand_in is not None:
        exec(stand_in, {})
        sys.stdout.flush()
        os._exit(0)
    line = sys.stdin.readline()
    if not line:
        os._exit(0)
    began = time.monotonic()
    request = json.loads(line)
    cpu = int(request["cpu_s"])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    print(json.dumps({"began": began}), flush=True)
    code = child_main(request["argv"])
    sys.stdout.flush()
    os._exit(code)

wake_r, wake_w = os.pipe()
os.set_blocking(wake_w, False)
signal.set_wakeup_fd(wake_w)
signal.signal(signal.SIGCHLD, lambda *_: None)
selector = selectors.DefaultSelector()
selector.register(requests, selectors.EVENT_READ)
selector.register(wake_r, selectors.EVENT_READ)
say(ready=True)
while True:
    for key, _ in selector.select():
        if key.fileobj is requests:
            message, fds, _, _ = socket.recv_fds(requests, 16, 2)
            if not message:
                os._exit(0)
            pid = os.fork()
            if pid == 0:
                try:
                    child(*fds)
                finally:
                    os._exit(70)
            for fd in fds:
                os.close(fd)
            say(pid=pid)
        else:
            os.read(wake_r, 4096)
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        say(exit=pid, code=os.waitstatus_to_exitcode(status))
"""


class ForkServerGone(Exception):
    """The fork server has exited (it crashed, was killed, or was closed)."""


@dataclass
class Forked:
    """One forked child: its pid, its stdin/stdout, its stderr, and its exit code once reaped.

    Raw sockets, not asyncio streams: a child that exits without reading its request resets
    the socket, and a StreamReader then raises at once, dropping what it had buffered (the
    verdict); ``sock_recv`` hands over every byte that arrived before the reset.
    """

    pid: int
    io: socket.socket
    errors: socket.socket
    exited: asyncio.Future[int | None] = field(repr=False)

    @property
    def returncode(self) -> int | None:
        return self.exited.result() if self.exited.done() else None

    async def run(self, argv: list[str], *, timeout_s: float) -> Verdict:
        """Hand ``argv`` (the inspection's arguments) to the child and read its verdict; the
        child never outlives this call."""
        request = {"argv": argv, "cpu_s": math.ceil(timeout_s) + 1}
        loop = asyncio.get_running_loop()
        try:
            with contextlib.suppress(ConnectionError):  # gone already: its exit code says why
                await loop.sock_sendall(self.io, json.dumps(request).encode() + b"\n")
            stdout, stderr = await asyncio.wait_for(self._collect(), timeout_s)
        except TimeoutError:
            raise InspectionRejected(
                "inspection_timeout", f"Inspecting the file took longer than {timeout_s:g} s."
            ) from None
        finally:
            await self.stop()  # timed out, cancelled, or our own code failed
        return Verdict(interpret_exit(self.returncode, stdout, stderr), began_at(stdout))

    async def _collect(self) -> tuple[bytes, bytes]:
        """Both outputs to the end (a capped prefix kept), then the exit code."""
        stdout, stderr = await asyncio.gather(
            _read_capped(self.io, MAX_STDOUT), _read_capped(self.errors, MAX_STDERR)
        )
        await asyncio.shield(self.exited)
        return stdout, stderr

    async def stop(self) -> None:
        """Kill the child unless it has exited; wait for its exit; close our ends."""
        if not self.exited.done():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        await asyncio.shield(self.exited)
        self.io.close()
        self.errors.close()


class ForkServer:
    """The fork server process and the task that reads its replies."""

    def __init__(self, proc: asyncio.subprocess.Process, requests: socket.socket) -> None:
        self._proc = proc
        self._requests = requests
        # Each fork waits for its pid and the future of its exit code.
        self._pids: deque[asyncio.Future[tuple[int, asyncio.Future[int | None]]]] = deque()
        self._exits: dict[int, asyncio.Future[int | None]] = {}
        self._lock = asyncio.Lock()
        self._replies: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, memory_mb: int) -> ForkServer:
        """Start a fork server and wait until it has imported the inspection."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            proc = await asyncio.create_subprocess_exec(
                *_command(memory_mb),
                stdin=theirs.fileno(),
                stdout=asyncio.subprocess.PIPE,
                env=child_env(),
                cwd="/",
                start_new_session=True,  # a terminal's Ctrl-C is the server's business
            )
        finally:
            theirs.close()
        server = cls(proc, ours)
        try:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT_S)
            if json.loads(line or b"{}").get("ready") is not True:
                raise ForkServerGone(f"the fork server did not start (said {line[:200]!r})")
        except BaseException:
            await server.close()
            raise
        server._replies = asyncio.create_task(server._read_replies())
        return server

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def alive(self) -> bool:
        return self._proc.returncode is None and self._replies is not None

    def child_pids(self) -> list[int]:
        """The children forked and not yet reaped."""
        return [pid for pid, exited in self._exits.items() if not exited.done()]

    async def fork(self) -> Forked:
        """A fresh child, waiting for its request on its stdin."""
        loop = asyncio.get_running_loop()
        io_ours, io_theirs = socket.socketpair()
        err_ours, err_theirs = socket.socketpair()
        try:
            return await self._fork(loop, (io_ours, err_ours), (io_theirs, err_theirs))
        except BaseException:
            # No Forked to close them: a child already forked sees EOF on its stdin and exits.
            io_ours.close()
            err_ours.close()
            raise

    async def _fork(
        self,
        loop: asyncio.AbstractEventLoop,
        ours: tuple[socket.socket, socket.socket],
        theirs: tuple[socket.socket, socket.socket],
    ) -> Forked:
        io_theirs, err_theirs = theirs
        try:
            async with self._lock:  # the pid replies come in the order of the requests
                if not self.alive:
                    raise ForkServerGone("the fork server has exited")
                forked = loop.create_future()
                self._pids.append(forked)
                try:
                    socket.send_fds(
                        self._requests, [b"f"], [io_theirs.fileno(), err_theirs.fileno()]
                    )
                except OSError as exc:
                    self._pids.remove(forked)
                    raise ForkServerGone(f"the fork server has exited ({exc})") from None
        finally:
            io_theirs.close()
            err_theirs.close()
        pid, exited = await forked
        for sock in ours:
            sock.setblocking(False)
        return Forked(pid, *ours, exited)

    async def close(self) -> None:
        """Kill the children and wait for the fork server to reap them; end it and reap it."""
        killed = [self._exits[pid] for pid in self.child_pids()]
        for pid in self.child_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if killed:
            # A child the fork server has not reaped when it exits goes to init, and a SIGKILL
            # is not instant: wait for the reaping, so none is alive when this returns.
            await asyncio.wait(killed, timeout=5)
        self._requests.close()  # EOF: the fork server exits; PDEATHSIG takes any child left
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._proc.wait(), 5)
        if self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
            await self._proc.wait()
        if self._replies is not None:
            await self._replies  # ends at the fork server's EOF, settling every future

    async def _read_replies(self) -> None:
        assert self._proc.stdout is not None
        try:
            while line := await self._proc.stdout.readline():
                self._on_reply(json.loads(line))
        except (ValueError, OSError) as exc:
            log.warning("the inspection fork server sent garbage: %s", exc)
        finally:
            self._replies = None
            self._settle_all()

    def _on_reply(self, reply: dict[str, int]) -> None:
        if "pid" in reply:
            pid = reply["pid"]
            exited: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
            self._exits[pid] = exited
            self._pids.popleft().set_result((pid, exited))
        elif "exit" in reply:
            exited = self._exits.pop(reply["exit"])
            if not exited.done():
                exited.set_result(reply["code"])

    def _settle_all(self) -> None:
        """The fork server is gone: so are its children (PDEATHSIG), exit codes unknown."""
        while self._pids:
            self._pids.popleft().set_exception(ForkServerGone("the fork server has exited"))
        for exited in self._exits.values():
            if not exited.done():
                exited.set_result(None)
        self._exits.clear()


def _command(memory_mb: int) -> list[str]:
    """The fork server's argv: the script and its limits."""
    return [
        sys.executable,
        "-c",
        _FORK_SERVER,
        package_root(),
        str(memory_mb * 1024 * 1024),
        str(os.getpid()),
    ]


async def _read_capped(sock: socket.socket, cap: int) -> bytes:
    """The first ``cap`` bytes; the rest is drained so the child never blocks on a full socket."""
    loop = asyncio.get_running_loop()
    kept = bytearray()
    # A child that died without reading its request resets the socket: that ends its output.
    with contextlib.suppress(ConnectionError):
        while chunk := await loop.sock_recv(sock, 65536):
            if len(kept) < cap:
                kept += chunk[: cap - len(kept)]
    return bytes(kept)
