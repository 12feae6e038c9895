"""The plumbing every step shares: its ``sheet`` and ``output`` arguments and its run.

A step reads one table (the previous step's, or a sheet of the run's input), transforms it and
either hands the result on or, with ``output``, writes it at once.  Progress is reported the
same way for all of them: 0 starting, 25 read, 50 processing, 75 handing on or writing.

The catalogue was written in two voices and clients see both, so both are kept: a step with a
``title`` (the table operations) says "Starting: <title>", counts "1 row", and names a file it
wrote in its message; one without says "Starting step execution", counts "1 rows", and names
the file in its result under ``file``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

import polars as pl
from pydantic import AfterValidator, Field

from chatflow import filenames
from chatflow.operations.common import plural, require_columns
from chatflow.operations.registry import StepContext, StepOutput

_OUTPUT = (
    "Write the result table to a file of this name (xlsx unless the name ends in .csv or "
    ".parquet; an existing name gets a new version). Default: hand the table to the next step; "
    "the run writes the final table once at the end."
)


def _check_file_name(name: str) -> str:
    reason = filenames.problem(name)
    if reason is not None:
        raise ValueError(reason)
    return name


OutputName = Annotated[str, AfterValidator(_check_file_name)]
"""A chat file name given in arguments, refused at validation time if it is not acceptable."""

SheetArg = Annotated[
    str | None,
    Field(
        description=(
            "Read this sheet of the run's input xlsx instead of the table the previous step "
            "handed on (default: that table, or the input's first sheet in a first step)."
        )
    ),
]
OutputArg = Annotated[OutputName | None, Field(description=_OUTPUT)]
TableOutputArg = OutputArg  # the table operations' name for it


@dataclass
class Outcome:
    """What a transform produced: the table, counts for ``result`` and a summary line."""

    table: pl.DataFrame
    message: str
    result: dict[str, Any] = field(default_factory=dict)


def _rows(n: int, title: str | None) -> str:
    return plural(n, "row") if title else f"{n} rows"


def open_step(
    ctx: StepContext, sheet: str | None, *, needed: Sequence[str] = (), title: str | None = None
) -> pl.DataFrame:
    """Report 0, read the step's table, report 25 and check the ``needed`` columns."""
    ctx.report(0, f"Starting: {title}" if title else "Starting step execution")
    df = ctx.read_input(sheet)
    ctx.report(25, f"Read {_rows(df.height, title)}")
    require_columns(df.columns, needed)  # fail before claiming to process anything
    return df


def finish(
    ctx: StepContext, outcome: Outcome, *, output: str | None, title: str | None = None
) -> StepOutput:
    """Hand the table on, or write it first (report 75 either way)."""
    table, rows = outcome.table, _rows(outcome.table.height, title)
    if output is None:
        ctx.report(75, f"Handing on {rows}")
        return StepOutput(table=table, result=outcome.result, message=outcome.message)
    ctx.report(75, f"Writing {rows}" if title else f"Writing {rows} to {output}")
    written = ctx.write_table(table, name=output)
    return StepOutput(
        table=table,
        files=[written],
        result=outcome.result if title else {**outcome.result, "file": written.name},
        message=f"{outcome.message}; wrote {written.name}" if title else outcome.message,
        wrote_table=True,
    )


def run_step(
    ctx: StepContext,
    *,
    sheet: str | None,
    output: str | None,
    needed: Sequence[str],
    doing: str | Callable[[pl.DataFrame], str],
    transform: Callable[[pl.DataFrame], Outcome],
    title: str | None = None,
) -> StepOutput:
    """Read, check ``needed`` columns, report ``doing``, transform, then hand on or write."""
    df = open_step(ctx, sheet, needed=needed, title=title)
    ctx.report(50, doing if isinstance(doing, str) else doing(df))
    return finish(ctx, transform(df), output=output, title=title)


def run_table_step(
    ctx: StepContext,
    *,
    title: str,
    doing: str,
    sheet: str | None,
    output: str | None,
    needed: Sequence[str],
    transform: Callable[[pl.DataFrame], Outcome],
) -> StepOutput:
    """``run_step`` for a table operation: titled, and its result starts with the row counts."""

    def counted(df: pl.DataFrame) -> Outcome:
        outcome = transform(df)
        counts = {"rows_in": df.height, "rows_out": outcome.table.height}
        return Outcome(outcome.table, outcome.message, {**counts, **outcome.result})

    return run_step(
        ctx,
        sheet=sheet,
        output=output,
        needed=needed,
        doing=doing,
        transform=counted,
        title=title,
    )
