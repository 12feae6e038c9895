"""excel/append-files: stack the current table and other chat files, by column name or position.

It reads other chat files besides the current table, so its ``read`` (``_read_tables``) replaces
the reading and its transform takes the tables read, and the ``StepContext`` for its limits."""

from __future__ import annotations

from typing import Literal

import polars as pl
from pydantic import Field

from chatflow.failures import StepFailed
from chatflow.operations.common import (
    LISTED,
    check_size,
    describe,
    is_dated,
)
from chatflow.operations.limits import Limits
from chatflow.operations.registry import OperationArgs, StepContext
from chatflow.operations.steps import Outcome, TableArgs, operation
from chatflow.operations.values import text_form

MAX_FILES = 50


# --- excel/append-files -------------------------------------------------------------------


class FileRef(OperationArgs):
    """A chat file, optionally one of its sheets."""

    file: str = Field(min_length=1, description="The chat file's name.")
    sheet: str | None = Field(default=None, description="Its sheet (default: the first).")


class AppendFilesArgs(TableArgs):
    """Arguments of excel/append-files."""

    files: list[str | FileRef] = Field(
        min_length=1,
        max_length=MAX_FILES,
        description="Chat files whose rows are appended below the current table, in this order: "
        "a name, or {file, sheet} for one sheet of a workbook (the same workbook may appear "
        "several times with different sheets).",
    )
    align: Literal["by_name", "by_position"] = Field(
        default="by_name",
        description="by_name: columns are matched by name; the result has every column that "
        "appears anywhere (in order of first appearance) and empty cells where a file lacks "
        "one. by_position: the n-th columns are stacked under the current table's names; every "
        "file must have the same number of columns (else incompatible_files).",
    )
    add_source_column: str | None = Field(
        default=None,
        min_length=1,
        description="Add a last column of this name holding each row's source: the file name, "
        "followed by ' [sheet]' when a sheet was chosen (the current table counts as the run's "
        "input file).",
    )


def _common_type(dtypes: list[pl.DataType]) -> pl.DataType:
    """The type holding every value of columns of these types without loss (else text)."""
    if len(dtypes) == 1:
        return dtypes[0]
    if all(d.is_numeric() for d in dtypes):
        return pl.Int64() if all(d.is_integer() for d in dtypes) else pl.Float64()
    if all(is_dated(d) for d in dtypes):
        return pl.Datetime("us")
    return pl.String()


def _as_type(table: pl.DataFrame, name: str, dtype: pl.DataType) -> pl.Expr:
    if dtype == pl.String:
        return text_form(name, table.schema[name]).alias(name)
    return pl.col(name).cast(dtype)


def _label(name: str, sheet: str | None) -> str:
    return name if sheet is None else f"{name} [{sheet}]"


def append_tables(
    tables: list[tuple[str, pl.DataFrame]],
    *,
    align: Literal["by_name", "by_position"],
    source_column: str | None = None,
    limits: Limits | None = None,
) -> tuple[pl.DataFrame, list[str], list[str]]:
    """The stacked table, the columns (by_name) that some tables lack, and the columns that
    became text.

    A column keeps its type when every table has it in that type (a table where it has no
    values does not count). Whole numbers with decimal numbers become decimal numbers, dates
    with datetimes datetimes; any other mix becomes text, each value in its text form
    (numbers without ".0", dates ISO, booleans true/false).

    ``too_many_rows`` first when the rows, or the empty cells added for columns a table
    lacks, pass ``limits.max_rows``.
    """
    if align == "by_position":
        tables = _by_position(tables)
    names = list(dict.fromkeys(c for _, table in tables for c in table.columns))
    if source_column is not None and source_column in names:
        raise StepFailed(
            "column_exists",
            f"Column '{source_column}' already exists; choose another add_source_column.",
            details={"column": source_column},
        )
    _check_append_size(tables, len(names), limits or Limits())
    dtypes, target = _targets(tables, names)
    aligned = []
    for label, table in tables:
        columns = [
            _as_type(table, n, target[n])
            if n in table.columns
            else pl.lit(None, target[n]).alias(n)
            for n in names
        ]
        if source_column is not None:
            columns.append(pl.lit(label, pl.String).alias(source_column))
        aligned.append(table.select(columns))
    missing = [n for n in names if any(n not in table.columns for _, table in tables)]
    as_text = [n for n, d in dtypes.items() if len(d) > 1 and target[n] == pl.String]
    return pl.concat(aligned, how="vertical"), missing, as_text


def _by_position(tables: list[tuple[str, pl.DataFrame]]) -> list[tuple[str, pl.DataFrame]]:
    """Every table under the first one's column names; ``incompatible_files`` if a width differs."""
    first_label, first = tables[0]
    for label, table in tables[1:]:
        if table.width != first.width:
            raise StepFailed(
                "incompatible_files",
                f"{label} has {table.width} columns but {first_label} has {first.width}; "
                "by_position needs the same number of columns (try align='by_name').",
                details={"file": label, "columns": table.width, "expected": first.width},
            )
    return [
        (label, table.rename(dict(zip(table.columns, first.columns, strict=True))))
        for label, table in tables
    ]


def _targets(
    tables: list[tuple[str, pl.DataFrame]], names: list[str]
) -> tuple[dict[str, list[pl.DataType]], dict[str, pl.DataType]]:
    """Per column, the types it has values in, and the type it takes in the result."""
    # A column without values (or absent) says nothing about its type.
    dtypes: dict[str, list[pl.DataType]] = {n: [] for n in names}
    for _, table in tables:
        for n, dtype in table.schema.items():
            if table.get_column(n).null_count() < table.height and dtype not in dtypes[n]:
                dtypes[n].append(dtype)
    fallback = {n: dtype for _, table in reversed(tables) for n, dtype in table.schema.items()}
    return dtypes, {n: _common_type(d) if d else fallback[n] for n, d in dtypes.items()}


Tables = list[tuple[str, pl.DataFrame]]
"""Tables to append, each with the label its rows' source column gets."""


def _read_tables(ctx: StepContext, args: AppendFilesArgs) -> tuple[Tables, str]:
    """The current table, then the files in order (each read reported as a minor step)."""
    tables = [(_label(ctx.input_name, args.sheet), ctx.read_input(args.sheet))]
    for index, item in enumerate(args.files):
        ref = FileRef(file=item) if isinstance(item, str) else item
        ctx.report(25 * index / len(args.files), f"Reading {ref.file}", minor=True)
        tables.append((_label(ref.file, ref.sheet), ctx.read_file(ref.file, ref.sheet)))
    rows = sum(table.height for _, table in tables)
    return tables, f"Read {rows} rows from {len(tables)} tables"


def _check_append_size(tables: list[tuple[str, pl.DataFrame]], width: int, limits: Limits) -> None:
    doing = f"Appending {len(tables)} tables"
    check_size(sum(table.height for _, table in tables), limits, doing=doing)
    padding = sum(table.height * (width - table.width) for _, table in tables)
    check_size(padding, limits, doing=doing + " with different columns", unit="empty cells")


@operation(
    "excel/append-files",
    example={
        "files": ["february.xlsx", {"file": "march.xlsx", "sheet": "Sales"}],
        "add_source_column": "source",
    },
    read=_read_tables,
    doing=lambda tables, args: f"Appending {len(tables)} tables",
)
def appended(tables: Tables, args: AppendFilesArgs, ctx: StepContext) -> Outcome:
    """Append the rows of other chat files (or sheets) below the current table, matching columns by
    name or by position, optionally recording each row's source file.

    Columns keep their types (numbers, dates, booleans, text); a column whose type differs
    between files becomes the type holding both when there is one (whole and decimal numbers:
    decimal numbers; dates and datetimes: datetimes), else text, each value in its text form
    (120, 3.5, 2024-01-31, true), and the result lists it under columns_as_text."""
    out, missing, as_text = append_tables(
        tables, align=args.align, source_column=args.add_source_column, limits=ctx.limits
    )
    result = {
        "sources": [{"source": label, "rows": table.height} for label, table in tables][:LISTED],
        "rows_out": out.height,
        "columns_out": out.width,
        "columns_not_in_all": missing[:LISTED],
        "columns_as_text": as_text[:LISTED],
    }
    message = f"Appended {len(tables)} tables into {out.height} rows"
    if as_text:
        message += (
            f"; {describe(as_text[:LISTED])} had different types in different files and became text"
        )
    return Outcome(out, message, result)
