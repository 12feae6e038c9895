"""Shared plumbing of the table operations (columns, rows, text): arguments and the step runner.

Every table operation reads one table, transforms it with a pure function returning an
``Outcome`` and either hands the table on or, with ``output``, writes it at once.  The runner
reports the same progress for all of them: 0 starting, 25 read, 50 processing, 75 writing or
handing on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

import polars as pl
from pydantic import Field

from chatflow.operations.common import require_columns
from chatflow.operations.registry import StepContext, StepFailed, StepOutput

SheetArg = Annotated[
    str | None,
    Field(
        description=(
            "Read this sheet of the run's input xlsx instead of the table the previous step "
            "handed on (default: that table, or the input's first sheet in a first step)."
        )
    ),
]
OutputArg = Annotated[
    str | None,
    Field(
        description=(
            "Write the result to this file now (xlsx, csv or parquet by its extension, xlsx "
            "if none). Without it the table is handed on and the run writes the final table "
            "once at the end."
        )
    ),
]
# A cell value given in arguments: JSON text, number or boolean, used as text the way the
# reader renders cells (true/false, 1234, 3.5).
CellValue = str | bool | int | float


def value_text(value: CellValue) -> str:
    """``value`` as cell text: booleans true/false, whole floats without ".0"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return str(value)


def repeated(names: Iterable[str]) -> list[str]:
    """Names listed more than once, sorted."""
    return sorted(n for n, k in Counter(names).items() if k > 1)


def no_repeats(names: list[str]) -> list[str]:
    """Validator body: refuse a list naming a column twice, or naming a blank column."""
    if any(not n.strip() for n in names):
        raise ValueError("column names must not be blank")
    twice = repeated(names)
    if twice:
        raise ValueError(f"columns listed more than once: {', '.join(twice)}")
    return names


def new_name(name: str) -> str:
    """Validator body: a new column name must not be blank or padded (the reader strips)."""
    if not name.strip():
        raise ValueError("a new column name must not be blank")
    if name != name.strip():
        raise ValueError(f"column name {name!r} has surrounding spaces")
    return name


def quoted(columns: Sequence[str]) -> str:
    """'a', 'b' for messages."""
    return ", ".join(f"'{c}'" for c in columns)


def describe(columns: Sequence[str]) -> str:
    """column 'a' / columns 'a', 'b' for messages."""
    return f"column '{columns[0]}'" if len(columns) == 1 else f"columns {quoted(columns)}"


def plural(n: int, word: str, many: str | None = None) -> str:
    """'1 row', '3 rows'."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


def text_of(name: str, dtype: pl.DataType) -> pl.Expr:
    """A column as text: text as is, dates ISO, datetimes "YYYY-MM-DD HH:MM:SS[.fff]", others
    cast."""
    col = pl.col(name)
    if dtype == pl.String:
        return col
    if dtype == pl.Date:
        return col.dt.to_string("%Y-%m-%d")
    if isinstance(dtype, pl.Datetime):
        return col.dt.to_string("%Y-%m-%d %H:%M:%S%.f")
    return col.cast(pl.String)


def is_empty(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """True where a cell is empty: null, or (text) "" or only whitespace."""
    if dtype == pl.String:
        return expr.is_null() | (expr.str.strip_chars() == "")
    return expr.is_null()


def blank_to_null(expr: pl.Expr) -> pl.Expr:
    """Text that is "" becomes null, the way the reader treats empty cells."""
    return pl.when(expr == "").then(None).otherwise(expr)


def text_columns(df: pl.DataFrame, named: list[str] | None) -> list[str]:
    """The columns a text operation works on: those named, else every text column."""
    if named is not None:
        return list(named)
    return [name for name, dtype in df.schema.items() if dtype == pl.String]


def reject_existing(new: Iterable[str], existing: Iterable[str], *, what: str) -> None:
    """``column_exists`` if a new column name is already taken."""
    present = set(existing)
    taken = [n for n in new if n in present]
    if taken:
        noun = "Column" if len(taken) == 1 else "Columns"
        verb = "exists" if len(taken) == 1 else "exist"
        raise StepFailed(
            "column_exists",
            f"{noun} {quoted(taken)} already {verb}; choose another name for {what}.",
            details={"existing": taken},
        )


@dataclass
class Outcome:
    """What a transform produced: the table, counts for ``result`` and a summary line."""

    table: pl.DataFrame
    message: str
    result: dict[str, Any] = field(default_factory=dict)


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
    """Read, check ``needed`` columns, transform, then write (``output``) or hand on."""
    ctx.report(0, f"Starting: {title}")
    df = ctx.read_input(sheet)
    ctx.report(25, f"Read {plural(df.height, 'row')}")
    require_columns(df.columns, needed)  # fail before claiming to process anything
    ctx.report(50, doing)
    outcome = transform(df)
    out = outcome.table
    result = {"rows_in": df.height, "rows_out": out.height, **outcome.result}
    if output is None:
        ctx.report(75, f"Handing on {plural(out.height, 'row')}")
        return StepOutput(table=out, result=result, message=outcome.message)
    ctx.report(75, f"Writing {plural(out.height, 'row')}")
    written = ctx.write_table(out, name=output)
    return StepOutput(
        table=out,
        files=[written],
        result=result,
        message=f"{outcome.message}; wrote {written.name}",
        wrote_table=True,
    )
