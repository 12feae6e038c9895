"""The second wall around excel/sql: a process that can no longer open anything.

A query is planned and run in a sealed worker.  Whatever a future polars release lets SQL
reach (a new table function, a parser bug), opening a file, a directory, a socket or a pipe
needs a new file descriptor, and a sealed process cannot get one: its RLIMIT_NOFILE is 0 (the
descriptors it already holds, its job socket and lifeline, keep working).  When the server runs
as root the process also moves into an empty, already deleted directory and drops to nobody,
so even a descriptor leak would find no data dir and no key file.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import tempfile

NOBODY = 65534
_PR_SET_NO_NEW_PRIVS = 38


def seal() -> None:
    """Confine this process for good; call ``warm_up`` first."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    if os.geteuid() == 0:
        _enter_empty_root()
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (0, 0))


def warm_up() -> None:
    """Load what a query needs while files can still be opened (modules, polars' thread pool)."""
    import polars as pl

    from chatflow.operations import sql_query

    frame = pl.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    sql_query.plan_and_run(
        "SELECT b, SUM(a) AS s FROM input GROUP BY b ORDER BY b", {"input": frame}, max_rows=10
    )


def _enter_empty_root() -> None:
    """chroot into an empty directory that no longer exists, then become nobody."""
    empty = tempfile.mkdtemp(prefix="chatflow-sealed-")
    handle = os.open(empty, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.rmdir(empty)  # nothing can be created in a deleted directory, nothing is left behind
        os.fchdir(handle)
        os.chroot(".")
    finally:
        os.close(handle)
    os.chdir("/")
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)
