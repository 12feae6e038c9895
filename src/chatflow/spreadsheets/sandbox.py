"""One inspection child: a fresh interpreter with memory, CPU and time caps, driven from async code.

calamine can abort its whole process on a hostile file, so the first full parse of an upload
happens in a throwaway child.  The limits are set by a tiny bootstrap (``_BOOTSTRAP``) in the
child itself, before polars or fastexcel are imported, rather than with ``preexec_fn``: that
runs Python between fork and exec, which can deadlock a parent that has other threads (the
service runs steps in worker threads).

A child is started ahead of need (``inspection_pool``): it imports the inspection and then
blocks on its stdin for one request, a JSON line ``{"argv": [...], "cpu_s": n}``.  It prints
``{"began": <monotonic time>}`` when the request arrives, then the verdict line of
``inspection.child_main``, and exits.  Its CPU limit is counted from the request, so the
import it did while waiting is not charged to the upload.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import chatflow
from chatflow.failures import StepFailed

log = logging.getLogger(__name__)

# polars + fastexcel need about 300 MB of address space just to import; 1 GiB leaves room
# for reading the largest sheet the gate lets through.
DEFAULT_MEMORY_MB = 1024
DEFAULT_TIMEOUT_S = 20.0
_MAX_STDOUT = 1024 * 1024
_MAX_STDERR = 64 * 1024

# argv: package root, address-space bytes, the server's pid.  PR_SET_PDEATHSIG ends a child
# the moment the server dies, even in the middle of a parse; an idle one also sees its stdin
# close.  (Its parent is the thread that started it: the server's event loop thread.)  Once
# its verdict is flushed the child leaves with os._exit: tearing the interpreter down only
# delays the answer.
_BOOTSTRAP = """\
import ctypes, json, resource, os, sys, time
root, memory, server = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
if sys.platform == "linux":
    ctypes.CDLL(None).prctl(1, 9)
if os.getppid() != server:
    sys.exit(0)
sys.path.insert(0, root)
from chatflow.spreadsheets.inspection import child_main
line = sys.stdin.readline()
if not line:
    sys.exit(0)
began = time.monotonic()
request = json.loads(line)
used = resource.getrusage(resource.RUSAGE_SELF)
cpu = int(used.ru_utime + used.ru_stime) + int(request["cpu_s"])
resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
print(json.dumps({"began": began}), flush=True)
code = child_main(request["argv"])
sys.stdout.flush()
os._exit(code)
"""


class InspectionRejected(StepFailed):
    """The sandboxed inspection refused the file, crashed on it, or ran out of time."""


@dataclass(frozen=True)
class Verdict:
    """What one child said about one file, and when it began on it (monotonic clock)."""

    info: dict[str, Any]
    began: float | None


async def start_child(memory_mb: int) -> asyncio.subprocess.Process:
    """A fresh inspection child, importing its libraries while it waits for a request."""
    return await asyncio.create_subprocess_exec(
        *_child_command(memory_mb),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_child_env(),
        cwd="/",
        start_new_session=True,  # a terminal's Ctrl-C is the server's business, not the child's
    )


async def run_child(
    proc: asyncio.subprocess.Process, argv: list[str], *, timeout_s: float
) -> Verdict:
    """Hand ``argv`` (the inspection's arguments) to a started child and read its verdict;
    the child never outlives this call."""
    request = {"argv": argv, "cpu_s": math.ceil(timeout_s) + 1}
    try:
        try:
            assert proc.stdin is not None
            proc.stdin.write(json.dumps(request).encode() + b"\n")
            await proc.stdin.drain()
            proc.stdin.close()
        except (BrokenPipeError, ConnectionResetError):
            pass  # it is gone already: its exit status says why
        stdout, stderr = await asyncio.wait_for(_collect(proc), timeout_s)
    except TimeoutError:
        raise InspectionRejected(
            "inspection_timeout", f"Inspecting the file took longer than {timeout_s:g} s."
        ) from None
    finally:
        await stop_child(proc)  # timed out, cancelled, or our own code failed
    return Verdict(interpret_exit(proc.returncode, stdout, stderr), _began(stdout))


async def stop_child(proc: asyncio.subprocess.Process) -> None:
    """Kill the child unless it has exited, and reap it."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    await proc.wait()


def inspection_argv(
    path: Path,
    kind: str,
    *,
    max_cells: int,
    max_uncompressed_mb: int,
    delimiter: str | None = None,
) -> list[str]:
    """The arguments of ``inspection.child_main`` for one file."""
    options = [f"--max-cells={max_cells}", f"--max-uncompressed-mb={max_uncompressed_mb}"]
    if delimiter is not None:
        options.append(f"--delimiter={delimiter}")
    return [*options, "--", kind, os.path.abspath(path)]  # the child runs in /


def _child_command(memory_mb: int) -> list[str]:
    """The argv of a child: the bootstrap and its limits."""
    return [
        sys.executable,
        "-c",
        _BOOTSTRAP,
        package_root(),
        str(memory_mb * 1024 * 1024),
        str(os.getpid()),
    ]


def _began(stdout: bytes) -> float | None:
    """When the child took the request, from its first line (None if it never said)."""
    first = stdout.split(b"\n", 1)[0]
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        began = json.loads(first).get("began")
        return float(began) if began is not None else None
    return None


def package_root() -> str:
    """The directory holding the chatflow package (site-packages, or src/ in a checkout)."""
    return str(Path(chatflow.__file__).resolve().parent.parent)


def _child_env() -> dict[str, str]:
    """A minimal environment: the child parses hostile input and needs none of our secrets."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "PYTHONPATH": os.pathsep.join(
            p for p in (package_root(), os.environ.get("PYTHONPATH", "")) if p
        ),
        "PYTHONDONTWRITEBYTECODE": "1",  # RLIMIT_FSIZE=0 would kill it for writing a .pyc
        "PYTHONIOENCODING": "utf-8",
        # Fewer threads and malloc arenas: each reserves address space counted by RLIMIT_AS.
        "POLARS_MAX_THREADS": "1",
        "RAYON_NUM_THREADS": "1",
        "MALLOC_ARENA_MAX": "2",
    }
    if "TMPDIR" in os.environ:
        env["TMPDIR"] = os.environ["TMPDIR"]
    return env


async def _collect(proc: asyncio.subprocess.Process) -> tuple[bytes, bytes]:
    """Read both pipes to the end (keeping only a capped prefix) and wait for the exit."""
    assert proc.stdout is not None and proc.stderr is not None
    stdout, stderr = await asyncio.gather(
        _read_capped(proc.stdout, _MAX_STDOUT), _read_capped(proc.stderr, _MAX_STDERR)
    )
    await proc.wait()
    return stdout, stderr


async def _read_capped(stream: asyncio.StreamReader, cap: int) -> bytes:
    """The first ``cap`` bytes; the rest is drained so the child never blocks on a full pipe."""
    kept = bytearray()
    while chunk := await stream.read(65536):
        if len(kept) < cap:
            kept += chunk[: cap - len(kept)]
    return bytes(kept)


def interpret_exit(returncode: int | None, stdout: bytes, stderr: bytes) -> dict[str, Any]:
    """The info dict from a finished child, or InspectionRejected explaining what went wrong."""
    if returncode is None or returncode != 0:
        _log_failure(returncode, stderr)
        if returncode is not None and returncode < 0:
            if -returncode == signal.SIGXCPU:
                raise InspectionRejected(
                    "inspection_timeout", "Inspecting the file used too much CPU time."
                )
            raise InspectionRejected(
                "parser_crashed",
                f"The spreadsheet parser crashed on this file ({_signal_name(-returncode)}).",
            )
        raise InspectionRejected(
            "parser_crashed", f"The spreadsheet inspector failed (exit status {returncode})."
        )
    lines = stdout.decode("utf-8", "replace").strip().splitlines()
    try:
        verdict = json.loads(lines[-1]) if lines else None
    except ValueError:
        verdict = None
    if isinstance(verdict, dict):
        if verdict.get("ok") is True and isinstance(verdict.get("info"), dict):
            return verdict["info"]
        if verdict.get("ok") is False and isinstance(verdict.get("code"), str):
            raise InspectionRejected(
                verdict["code"], str(verdict.get("message", "")), verdict.get("details")
            )
    _log_failure(returncode, stderr)
    raise InspectionRejected("inspection_failed", "The spreadsheet inspector gave no verdict.")


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _log_failure(returncode: int | None, stderr: bytes) -> None:
    tail = stderr[-2000:].decode("utf-8", "replace")
    log.warning("inspection child failed (exit %s): %s", returncode, tail)
