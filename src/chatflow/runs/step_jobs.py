"""A whole step as one worker job: the step's reads, compute and writes happen in a process
with its own memory cap that the server can kill, never in the server itself.

The server keeps a run's ``RunFiles``; each step sends a detached copy of it and where the
current table lies (``RunFiles.handed``), and takes back the step's output, where its table lies
now, and what the step changed (names taken, files written).  No table crosses the socket.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

from chatflow.operations import load_all
from chatflow.operations.column_types import infer_types
from chatflow.operations.inspect_ops import PREVIEW_TEXT
from chatflow.operations.registry import Operation, ReportFn, StepOutput, WriteOptions
from chatflow.operations.values import plain
from chatflow.runs.step_io import RunFiles, handed_table, perform_step

Relay = Callable[[Any], None]  # the worker's progress channel; None only checks for a stop


def step_job(
    files: RunFiles,
    operation: str,
    arguments: dict[str, Any],
    handed: Path | None,
    *,
    describe_rows: int | None,
    progress: Relay,
) -> dict[str, Any]:
    """Run one step where this job runs, on the table at ``handed``; its table is handed on
    (the same file if the step passed it through unchanged)."""
    found = load_all().get(operation)
    assert found is not None, operation  # the server checked the name before sending
    args = found.args_model.model_validate(arguments, context=files.limits.as_context())
    received = files.current = handed_table(handed)
    output = perform_step(
        operation=found,
        args=args,
        files=files,
        report=lambda percent, message, minor=False: progress((percent, message, minor)),
        check_cancelled=lambda: progress(None),
    )
    table, output.table = output.table, None
    described = describe_step(found, output, table, describe_rows) if describe_rows else None
    if table is not None and table is not received:
        handed = files.hand_off(table)
    elif table is None:
        handed = None
    return {"handed": handed, "output": output, "files": _changes(files), "described": described}


def final_write_job(
    files: RunFiles, operation: str, handed: Path, *, progress: Relay
) -> dict[str, Any]:
    """Write the run's final table, which no step wrote, as its output file."""
    files.interrupt = lambda: progress(None)
    table = handed_table(handed)
    assert table is not None
    files.write(
        {"Sheet1": table},
        operation=operation,
        name=None,
        options=WriteOptions(),
        progress=lambda _: progress(None),
    )
    return _changes(files)


def run_step_remotely(
    files: RunFiles,
    operation: Operation[Any],
    arguments: dict[str, Any],
    *,
    report: ReportFn,
    check_cancelled: Callable[[], None],
    describe_rows: int | None = None,
) -> tuple[StepOutput, dict[str, Any] | None]:
    """Run one step in ``files.processes``, fold what it changed back into ``files``; blocking."""

    def relay(payload: tuple[float, str, bool]) -> None:
        report(*payload)

    reply = files.processes.call(
        step_job,
        files.detached(),
        operation.name,
        arguments,
        files.handed,
        describe_rows=describe_rows,
        progress=relay,
        interrupt=check_cancelled,
    )
    files.drop_handed(keep=reply["handed"])
    _fold(files, reply["files"])
    return reply["output"], reply["described"]


def write_final_remotely(
    files: RunFiles, operation: str, *, check_cancelled: Callable[[], None]
) -> None:
    """Write the handed-on table as the run's output in ``files.processes``; blocking."""
    assert files.handed is not None
    changes = files.processes.call(
        final_write_job,
        files.detached(),
        operation,
        files.handed,
        progress=lambda _: None,
        interrupt=check_cancelled,
    )
    _fold(files, changes)


def describe_step(
    operation: Operation[Any], output: StepOutput, table: pl.DataFrame | None, rows: int
) -> dict[str, Any]:
    """What a dry run shows of one step: its columns, types, row count and first rows."""
    return {
        "operation": operation.name,
        "columns": list(table.columns) if table is not None else None,
        "types": list(infer_types(table).values()) if table is not None else None,
        "row_count": table.height if table is not None else None,
        "rows": _json_rows(table.head(rows)) if table is not None else [],
        "result": output.result,
        "files": [item.name for item in output.files],
    }


def _json_rows(table: pl.DataFrame) -> list[list[Any]]:
    return [[plain(v, PREVIEW_TEXT) for v in row] for row in table.iter_rows()]


def _changes(files: RunFiles) -> dict[str, Any]:
    return {"taken": files.taken_names, "written": files.written, "unwritten": files.unwritten}


def _fold(files: RunFiles, changes: dict[str, Any]) -> None:
    files.taken_names = changes["taken"]
    files.written.extend(changes["written"])
    files.unwritten = changes["unwritten"]
