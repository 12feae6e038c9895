"""What an inspection child may use and what its exit means: limits, environment, verdict.

calamine can abort its whole process on a hostile file, so the first full parse of an upload
happens in a throwaway child forked by ``fork_server``, under an address-space cap, no core
dumps, no file writes, and a CPU limit counted from its request.  The child prints
``{"began": <monotonic time>}`` when the request arrives, then the verdict line of
``inspection.child_main``, and exits; ``interpret_exit`` turns that, or its death, into the
file's info or an ``InspectionRejected``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
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
MAX_STDOUT = 1024 * 1024  # kept of a child's output; the rest is drained unread
MAX_STDERR = 64 * 1024


class InspectionRejected(StepFailed):
    """The sandboxed inspection refused the file, crashed on it, or ran out of time."""


@dataclass(frozen=True)
class Verdict:
    """What one child said about one file, and when it began on it (monotonic clock)."""

    info: dict[str, Any]
    began: float | None


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


def began_at(stdout: bytes) -> float | None:
    """When the child took the request, from its first line (None if it never said)."""
    first = stdout.split(b"\n", 1)[0]
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        began = json.loads(first).get("began")
        return float(began) if began is not None else None
    return None


def package_root() -> str:
    """The directory holding the chatflow package (site-packages, or src/ in a checkout)."""
    return str(Path(chatflow.__file__).resolve().parent.parent)


def child_env() -> dict[str, str]:
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
