"""excel/inspect, excel/preview, excel/profile-columns and excel/value-counts: describe a table.

A column's type is the one it was read with (``column_types``); a text column whose values
read as several kinds says how many of each (``mixed``), which is why it is text.

inspect, preview and profile-columns only look (``returning=``): the table goes on unchanged.
inspect's transform takes the ``StepContext`` for the input file's name and sheet names.
"""

from __future__ import annotations

from typing import Any

import polars as pl
from pydantic import Field, field_validator

from chatflow.operations.column_types import infer_types, text_value_kinds
from chatflow.operations.common import refuse_repeats, require_columns, unique_name
from chatflow.operations.registry import (
    INPUT_COLUMNS,
    StepContext,
)
from chatflow.operations.steps import Outcome, SheetArgs, TableArgs, operation
from chatflow.operations.values import plain

DETAILED_COLUMNS = 50  # columns described one by one in a result
PREVIEW_COLUMNS = 100
PREVIEW_TEXT = 1000  # characters of one previewed cell
TOP_VALUES = 10


def _describe_columns(columns: list[str]) -> str:
    if len(columns) == 1:
        return f"column '{columns[0]}'"
    return f"{len(columns)} columns"


def _detailed(df: pl.DataFrame) -> list[str]:
    return list(df.columns[:DETAILED_COLUMNS])


def _look_sheet(verb: str) -> Any:
    """The ``sheet`` argument of a step that only looks: the chain's table stays as it was."""
    return Field(
        default=None,
        description=f"{verb} this sheet of the run's xlsx input (default: the current table). "
        "The table handed to the next step is unchanged either way.",
    )


# --- excel/inspect ------------------------------------------------------------------------


class InspectArgs(SheetArgs):
    """Arguments of excel/inspect."""

    sheet: str | None = _look_sheet("Inspect")


@operation(
    "excel/inspect",
    example={},
    doing=lambda df, args: f"Inferring the types of {_describe_columns(_detailed(df))}",
    returning="Returning the description",
    facts={"DETAILED_COLUMNS": DETAILED_COLUMNS},
)
def inspect(df: pl.DataFrame, args: InspectArgs, ctx: StepContext) -> Outcome:
    """Describe the table: the input file's sheets, row count and, for each column (the first
    {DETAILED_COLUMNS} in detail), its type (integer, float, boolean, date, datetime, time,
    text or empty), its number of empty cells and, for a text column whose values read as
    several kinds (numbers and words, say), how many of each: why it is text.

    Hands the table on unchanged."""
    detailed = _detailed(df)
    types = infer_types(df, detailed)
    mixed = text_value_kinds(df, detailed)
    nulls = df.select(pl.col(c).null_count() for c in detailed).row(0) if detailed else ()
    result = {
        "input": ctx.input_name,
        "sheets": ctx.sheet_names()[:DETAILED_COLUMNS],
        "sheet": args.sheet,
        "row_count": df.height,
        "column_count": df.width,
        "columns": [
            {
                "name": name,
                "type": types[name],
                "nulls": n,
                **({"mixed": mixed[name]} if name in mixed else {}),
            }
            for name, n in zip(detailed, nulls, strict=True)
        ],
        "columns_truncated": df.width > len(detailed),
    }
    return Outcome(df, f"{df.height} rows, {df.width} columns", result)


# --- excel/preview ------------------------------------------------------------------------


class PreviewArgs(SheetArgs):
    """Arguments of excel/preview."""

    rows: int = Field(default=20, ge=1, le=1000, description="How many rows to show (1-1000).")
    sheet: str | None = _look_sheet("Preview")


def _shown(df: pl.DataFrame, args: PreviewArgs) -> pl.DataFrame:
    return df.head(args.rows).select(df.columns[:PREVIEW_COLUMNS])


@operation(
    "excel/preview",
    example={"rows": 20},
    doing=lambda df, args: f"Preparing {_shown(df, args).height} rows",
    returning="Returning the preview",
    facts={"PREVIEW_COLUMNS": PREVIEW_COLUMNS, "PREVIEW_TEXT": PREVIEW_TEXT},
)
def preview(df: pl.DataFrame, args: PreviewArgs) -> Outcome:
    """Show the first rows of the table (at most 1000 rows and the first {PREVIEW_COLUMNS} columns;
    cells longer than {PREVIEW_TEXT} characters are cut with '…').

    Hands the table on unchanged."""
    rows = _shown(df, args)
    result = {
        "columns": rows.columns,
        "types": list(infer_types(rows, rows.columns).values()),
        "rows": [[plain(v, PREVIEW_TEXT) for v in row] for row in rows.iter_rows()],
        "row_count": df.height,
        "rows_shown": rows.height,
        "column_count": df.width,
        "columns_truncated": df.width > rows.width,
    }
    return Outcome(df, f"Showing {rows.height} of {df.height} rows", result)


# --- excel/profile-columns ----------------------------------------------------------------


class ProfileColumnsArgs(SheetArgs):
    """Arguments of excel/profile-columns."""

    columns: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=DETAILED_COLUMNS,
        description=f"Columns to profile (default: the first {DETAILED_COLUMNS}).",
        json_schema_extra=INPUT_COLUMNS,
    )
    sheet: str | None = _look_sheet("Profile")

    @field_validator("columns")
    @classmethod
    def _no_repeats(cls, columns: list[str] | None) -> list[str] | None:
        return None if columns is None else refuse_repeats(columns, "")

    def needed_columns(self) -> list[str]:
        return list(self.columns or [])

    def profiled(self, df: pl.DataFrame) -> list[str]:
        """The columns named, else the first ``DETAILED_COLUMNS``."""
        return self.columns or _detailed(df)


def profile(df: pl.DataFrame, columns: list[str]) -> list[dict[str, Any]]:
    """Per column: type, nulls, distinct non-null values, min/max/mean, top values.

    min and max are in the column's own type (numbers, dates, text compared as text); mean is
    null unless the column is numeric.
    """
    types = infer_types(df, columns)
    mixed = text_value_kinds(df, columns)
    stats: list[pl.Expr] = []
    for i, name in enumerate(columns):
        col = pl.col(name)
        numeric = types[name] in ("integer", "float")
        stats += [
            col.null_count().alias(f"nulls{i}"),
            col.drop_nulls().n_unique().alias(f"distinct{i}"),
            col.min().alias(f"min{i}"),
            col.max().alias(f"max{i}"),
            (col.mean() if numeric else pl.lit(None)).alias(f"mean{i}"),
        ]
    row = df.select(stats).row(0, named=True) if stats else {}
    queries = []
    for name in columns:
        count = unique_name("count", {name})
        queries.append(
            df.lazy()
            .select(pl.col(name).drop_nulls())
            .group_by(name)
            .len(name=count)
            .sort([count, name], descending=[True, False], maintain_order=True)
            .head(TOP_VALUES)
        )
    tops = pl.collect_all(queries)  # in parallel
    profiles = []
    for i, (name, top) in enumerate(zip(columns, tops, strict=True)):
        profiles.append(
            {
                "name": name,
                "type": types[name],
                **({"mixed": mixed[name]} if name in mixed else {}),
                "nulls": row[f"nulls{i}"],
                "distinct": row[f"distinct{i}"],
                "min": plain(row[f"min{i}"]),
                "max": plain(row[f"max{i}"]),
                "mean": plain(row[f"mean{i}"]),
                "top_values": [{"value": plain(v), "count": n} for v, n in top.iter_rows()],
            }
        )
    return profiles


@operation(
    "excel/profile-columns",
    example={"columns": ["postal_code", "amount"]},
    doing=lambda df, args: f"Profiling {_describe_columns(args.profiled(df))}",
    returning="Returning the profile",
    facts={"TOP_VALUES": TOP_VALUES},
)
def profile_columns(df: pl.DataFrame, args: ProfileColumnsArgs) -> Outcome:
    """Profile columns: type (and, for a text column whose values read as several kinds, how many
    of each), empty cells, distinct values, min and max in the column's own type (numbers,
    dates, or text compared as text), mean (numeric columns) and the {TOP_VALUES} most frequent
    values, as typed JSON.

    Hands the table on unchanged."""
    profiled = args.profiled(df)
    result = {
        "row_count": df.height,
        "columns": profile(df, profiled),
        "columns_truncated": args.columns is None and df.width > len(profiled),
    }
    message = f"Profiled {_describe_columns(profiled)} over {df.height} rows"
    return Outcome(df, message, result)


# --- excel/value-counts -------------------------------------------------------------------


class ValueCountsArgs(TableArgs):
    """Arguments of excel/value-counts."""

    column: str = Field(
        description="The column whose values are counted.", json_schema_extra=INPUT_COLUMNS
    )
    top_n: int | None = Field(
        default=None, ge=1, description="Keep only the N most frequent values (default: all)."
    )
    include_percent: bool = Field(
        default=False,
        description="Add a 'percent' column: the share of the counted rows (0-100, 2 decimals); "
        "the whole column is the base even when top_n keeps fewer values.",
    )
    include_nulls: bool = Field(
        default=True,
        description="Count empty cells as a value of their own (an empty cell in the output); "
        "false leaves them out of the counts and of the percent base.",
    )

    def needed_columns(self) -> list[str]:
        return [self.column]


def value_counts(
    df: pl.DataFrame,
    column: str,
    *,
    top_n: int | None = None,
    include_percent: bool = False,
    include_nulls: bool = True,
) -> pl.DataFrame:
    """[column, count, (percent)] sorted by count (descending), then by value (empty last)."""
    require_columns(df.columns, [column])
    taken = {column}
    count = unique_name("count", taken)
    values = df.select(column)
    if not include_nulls:
        values = values.drop_nulls()
    out = (
        values.group_by(column)
        .len(name=count)
        .with_columns(pl.col(count).cast(pl.Int64))
        .sort([count, column], descending=[True, False], nulls_last=True, maintain_order=True)
    )
    if include_percent:
        total = max(values.height, 1)
        out = out.with_columns(
            (pl.col(count) * 100.0 / total).round(2).alias(unique_name("percent", taken))
        )
    return out.head(top_n) if top_n is not None else out


@operation(
    "excel/value-counts",
    example={"column": "city", "top_n": 10, "include_percent": True},
    doing=lambda df, args: f"Counting the values of column '{args.column}'",
    facts={"TOP_VALUES": TOP_VALUES},
)
def counted(df: pl.DataFrame, args: ValueCountsArgs) -> Outcome:
    """Count how often each value of a column occurs: a table [value, count, (percent)] sorted by
    count (most frequent first), ties by value in the column's own type (numbers as numbers);
    the value column keeps that type, the count is an integer.

    Also returned in the step result (the first {TOP_VALUES} values, typed JSON)."""
    full = value_counts(
        df,
        args.column,
        include_percent=args.include_percent,
        include_nulls=args.include_nulls,
    )
    out = full.head(args.top_n) if args.top_n is not None else full
    result = {
        "column": args.column,
        "type": infer_types(df, [args.column])[args.column],
        "rows_in": df.height,
        "distinct": full.height,
        "rows_out": out.height,
        "top": [
            {
                "value": plain(row[0]),
                "count": row[1],
                **({"percent": row[2]} if len(row) > 2 else {}),
            }
            for row in out.head(TOP_VALUES).iter_rows()
        ],
    }
    return Outcome(out, f"{full.height} distinct values in column '{args.column}'", result)
