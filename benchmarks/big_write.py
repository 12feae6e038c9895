"""Issue 15: the default xlsx engine on a 1M x 10 table (5 int, 5 text columns), in one
library call against in row chunks, with the gaps between progress reports and how long a
cancel takes to end the call: in process (a progress callback raising) and through a worker
process as a run cancels it (the pool's stop request).

``PYTHONPATH=src:. .venv/bin/python -m benchmarks.big_write [--rows N] [--reps N]
[--chunk-cells N] [--level N]``; prints one JSON line per measurement and a summary (medians)
of wall and CPU seconds.  Not part of ``make bench``: it takes minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

from chatflow.failures import Cancelled
from chatflow.runs.worker_pool import WorkerPool
from chatflow.spreadsheets import writing_chunks, writing_rust
from chatflow.spreadsheets.writing import write_workbook


def table(rows: int) -> pl.DataFrame:
    """Ints up to a million and 8-digit text with leading zeros, deterministic."""
    i = pl.int_range(0, rows, eager=True)
    columns = {f"n{k}": (i * (k + 7)) % 1_000_003 for k in range(5)}
    columns |= {f"t{k}": ((i * (k + 3)) % 99_991).cast(pl.String).str.zfill(8) for k in range(5)}
    return pl.DataFrame(columns)


def timed(df: pl.DataFrame, dest: Path, chunked: bool, stop_at: float | None) -> dict[str, Any]:
    """One write: wall and CPU seconds, the report times, and for ``stop_at`` the seconds
    from the raise to the call's end."""
    marks: list[float] = []
    raised: list[float] = []

    def progress(fraction: float) -> None:
        marks.append(time.perf_counter())
        if stop_at is not None and fraction >= stop_at:
            raised.append(time.perf_counter())
            raise Cancelled()

    threshold = writing_rust.CHUNKED_ABOVE_CELLS
    writing_rust.CHUNKED_ABOVE_CELLS = 0 if chunked else df.height * df.width
    start, cpu = time.perf_counter(), time.process_time()
    try:
        write_workbook({"Sheet1": df}, dest, progress=progress)
    except Cancelled:
        pass
    finally:
        writing_rust.CHUNKED_ABOVE_CELLS = threshold
    end = time.perf_counter()
    points = [start, *marks, end]
    return {
        "chunked": chunked,
        "wall_s": round(end - start, 3),
        "cpu_s": round(time.process_time() - cpu, 3),
        "reports": len(marks),
        "max_gap_s": round(max(b - a for a, b in zip(points, points[1:], strict=False)), 3),
        "stop_s": round(end - raised[0], 3) if raised else None,
        "bytes": dest.stat().st_size if dest.exists() else None,
    }


def through_a_worker(df: pl.DataFrame, dest: Path, stop_at: float) -> dict[str, Any]:
    """A cancel as a run sees it: the step's side raises, the pool asks the worker to stop
    and waits for its answer (or kills it after STOP_GRACE_S)."""
    marks: list[float] = []

    def progress(fraction: float) -> None:
        marks.append(time.perf_counter())
        if fraction >= stop_at:
            raise Cancelled()

    pool = WorkerPool(1)
    try:
        pool.call(int, "1")  # started and warm
        worker = pool.pids()
        start = time.perf_counter()
        with contextlib.suppress(Cancelled):
            pool.call(write_workbook, {"Sheet1": df}, dest, progress=progress)
        end = time.perf_counter()
        kept = pool.pids() == worker
    finally:
        pool.close()
    points = [start, *marks]
    return {
        "wall_s": round(end - start, 3),
        "reports": len(marks),
        "max_gap_s": round(max(b - a for a, b in zip(points, points[1:], strict=False)), 3),
        "stop_s": round(end - marks[-1], 3),
        "worker_kept": kept,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--chunk-cells", type=int, default=writing_rust.CHUNK_CELLS)
    parser.add_argument("--level", type=int, default=writing_chunks.ZLIB_LEVEL)
    parser.add_argument(
        "--only", choices=["single", "chunked", "cancel", "worker"], action="append"
    )
    args = parser.parse_args(argv)
    writing_rust.CHUNK_CELLS = args.chunk_cells
    writing_chunks.ZLIB_LEVEL = args.level
    only = set(args.only or ["single", "chunked", "cancel", "worker"])
    df = table(args.rows)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in sorted(only)}
    calls: dict[str, Callable[[Path], dict[str, Any]]] = {
        "single": lambda dest: timed(df, dest, chunked=False, stop_at=None),
        "chunked": lambda dest: timed(df, dest, chunked=True, stop_at=None),
        "cancel": lambda dest: timed(df, dest, chunked=True, stop_at=0.5),
        "worker": lambda dest: through_a_worker(df, dest, stop_at=0.5),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            for name in runs:  # alternating, so a load swing hits both
                result = calls[name](Path(tmp) / f"{name}.xlsx")
                runs[name].append(result)
                sys.stdout.write(json.dumps({"rep": rep, "run": name, **result}) + "\n")
                sys.stdout.flush()
    summary = {
        name: {
            key: statistics.median(r[key] for r in results)
            for key in ("wall_s", "cpu_s", "max_gap_s", "reports", "stop_s")
            if results[0].get(key) is not None
        }
        for name, results in runs.items()
    }
    options = {"chunk_cells": args.chunk_cells, "level": args.level}
    sys.stdout.write(json.dumps({"summary": summary, **options}) + "\n")


if __name__ == "__main__":
    main()
