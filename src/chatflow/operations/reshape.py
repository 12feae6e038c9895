"""excel/group-aggregate and excel/pivot.

pivot's transform takes the ``StepContext`` for its limits: a pivot may not make more cells
than ``max_rows`` allows.

Types: count and count_distinct are Int64; first, last, min and max keep the column's type
(numbers compare as numbers, dates as dates, text as text by code point, false before true).
sum and mean need numbers: a number column's sum keeps its type (Int64 stays Int64), a boolean
column's sum counts its true values, mean is Float64; on a date, datetime or time column they
fail with column_type_mismatch.  A text column (say, numbers mixed with "n/a") is read the
lenient way ``ColumnFacts.numeric_expr`` reads it: values that are not numbers ("n/a", "1,5")
are ignored, and the step's result counts them under ``not_numbers``; its sum is Int64 when
every number in it is whole, else Float64.
Groups keep the order in which their keys first appear unless sorting is asked for; empty keys
form a group of their own.
"""

from __future__ import annotations

from typing import Any, Literal

import polars as pl
from pydantic import ConfigDict, Field, field_validator, model_validator

from chatflow.failures import StepFailed
from chatflow.operations.column_types import ColumnFacts, column_facts
from chatflow.operations.common import (
    check_size,
    column_type_mismatch,
    plural,
    refuse_repeats,
    repeated,
    require_columns,
    unique_name,
)
from chatflow.operations.limits import Limits
from chatflow.operations.registry import (
    INPUT_COLUMNS,
    OperationArgs,
    StepContext,
)
from chatflow.operations.steps import Outcome, TableArgs, operation
from chatflow.operations.values import as_number, is_empty, text_form
from chatflow.spreadsheets.cell_types import cell_kind

AggregateFn = Literal["count", "sum", "mean", "min", "max", "count_distinct", "first", "last"]
MAX_PIVOT_COLUMNS = 1000
BLANK_LABEL = "(blank)"


def aggregate_expr(fn: AggregateFn, column: str | None, facts: dict[str, ColumnFacts]) -> pl.Expr:
    """One aggregation over a group: see the module docstring for the types."""
    if column is None:
        return pl.len().cast(pl.Int64)  # count of rows
    col = pl.col(column)
    if fn == "count":
        return col.count().cast(pl.Int64)
    if fn == "count_distinct":
        return col.drop_nulls().n_unique().cast(pl.Int64)
    if fn == "first":
        return col.first()
    if fn == "last":
        return col.last()
    if fn == "sum":
        return facts[column].numeric_expr().sum()
    if fn == "mean":
        return facts[column].numeric_expr().cast(pl.Float64).mean()
    return col.min() if fn == "min" else col.max()


def numeric_facts(df: pl.DataFrame, columns: list[str]) -> dict[str, ColumnFacts]:
    """Number facts of the columns summed or averaged; column_type_mismatch for a date,
    datetime or time column (or any other type that holds no numbers)."""
    for name in columns:
        dtype = df.schema[name]
        if not (dtype.is_numeric() or dtype in (pl.Boolean, pl.String, pl.Null)):
            raise column_type_mismatch(
                name, cell_kind(dtype), "sum and mean need numbers (min, max, first, last work)."
            )
    return column_facts(df, columns)


def not_numbers(df: pl.DataFrame, columns: list[str]) -> dict[str, int]:
    """For the text columns among ``columns``: how many non-empty values are not numbers (and
    so are ignored by sum and mean); columns where there are none are left out."""
    text = [c for c in dict.fromkeys(columns) if df.schema[c] == pl.String]
    if not text:
        return {}
    counts = df.select(
        (~is_empty(pl.col(c), pl.String()) & as_number(pl.col(c)).is_null()).sum().alias(c)
        for c in text
    ).row(0, named=True)
    return {c: int(n) for c, n in counts.items() if n}


def _ignored(counts: dict[str, int]) -> str:
    return "".join(
        f"; {plural(n, 'value')} of '{c}' {'is' if n == 1 else 'are'} not a number (ignored "
        "by sum/mean)"
        for c, n in counts.items()
    )


# --- excel/group-aggregate ----------------------------------------------------------------


class Aggregation(OperationArgs):
    """One output column of excel/group-aggregate."""

    model_config = ConfigDict(extra="forbid", serialize_by_alias=True)

    column: str | None = Field(
        default=None,
        description="The column to aggregate; leave it out with fn='count' to count rows.",
        json_schema_extra=INPUT_COLUMNS,
    )
    fn: AggregateFn = Field(
        description="count: non-empty values (rows, without column); sum, mean: of a number or "
        "boolean column (true counts 1), or of the values of a text column that are numbers, "
        "others ignored (sum of nothing is 0); min, max: in the column's type (numbers as "
        "numbers, dates as dates, text as text); count_distinct: distinct non-empty values; "
        "first, last: the value in the group's first or last row (may be empty)."
    )
    as_: str | None = Field(
        default=None,
        alias="as",
        min_length=1,
        description="Name of the output column (default: <column>_<fn>, or 'count').",
    )

    @model_validator(mode="after")
    def _column_needed(self) -> Aggregation:
        if self.column is None and self.fn != "count":
            raise ValueError(f"fn={self.fn!r} needs a column")
        return self

    @property
    def name(self) -> str:
        if self.as_ is not None:
            return self.as_
        return f"{self.column}_{self.fn}" if self.column is not None else "count"


class GroupAggregateArgs(TableArgs):
    """Arguments of excel/group-aggregate."""

    by: list[str] = Field(
        default_factory=list,
        description="Columns whose values form the groups (empty: one row for the whole table).",
        json_schema_extra=INPUT_COLUMNS,
    )
    aggregations: list[Aggregation] = Field(
        min_length=1, max_length=200, description="The output columns, after the group columns."
    )
    sort: bool = Field(
        default=False,
        description="Sort the groups by their key values (as text, empty last) instead of the "
        "order in which they first appear.",
    )

    @field_validator("by")
    @classmethod
    def _by(cls, by: list[str]) -> list[str]:
        return refuse_repeats(by, "group columns")

    @model_validator(mode="after")
    def _distinct_names(self) -> GroupAggregateArgs:
        names = [*self.by, *(agg.name for agg in self.aggregations)]
        twice = repeated(names)
        if twice:
            raise ValueError(
                f"output column names repeat ({', '.join(twice)}); give each "
                "aggregation a distinct 'as'"
            )
        return self

    def needed_columns(self) -> list[str]:
        used = (a.column for a in self.aggregations if a.column is not None)
        return list(dict.fromkeys([*self.by, *used]))


def _summed(aggregations: list[Aggregation]) -> list[str]:
    return list(
        dict.fromkeys(a.column for a in aggregations if a.column and a.fn in ("sum", "mean"))
    )


def group_aggregate(
    df: pl.DataFrame, by: list[str], aggregations: list[Aggregation], *, sort: bool = False
) -> pl.DataFrame:
    """One row per group with the aggregations (or one row in all without ``by``)."""
    needed = list(dict.fromkeys(a.column for a in aggregations if a.column is not None))
    require_columns(df.columns, [*by, *needed])
    facts = numeric_facts(df, _summed(aggregations))
    exprs = [aggregate_expr(a.fn, a.column, facts).alias(a.name) for a in aggregations]
    if not by:
        return df.select(exprs)
    out = df.group_by(by, maintain_order=True).agg(exprs)
    return out.sort(by, nulls_last=True, maintain_order=True) if sort else out


@operation(
    "excel/group-aggregate",
    example={
        "by": ["region"],
        "aggregations": [
            {"column": "amount", "fn": "sum", "as": "total"},
            {"fn": "count", "as": "orders"},
        ],
    },
    doing=lambda df, args: f"Aggregating {df.height} rows",
)
def aggregated(df: pl.DataFrame, args: GroupAggregateArgs) -> Outcome:
    """Group rows by the values of some columns and compute count, sum, mean, min, max,
    count_distinct, first or last of other columns, one row per group.

    Group columns keep their types. count and count_distinct are whole numbers; sum of a
    whole-number column is a whole number, of a float column a float, of a boolean column the
    number of true values; mean is a float; min, max, first and last keep the column's type
    (numbers compare as numbers, dates as dates, text as text). sum/mean of a date or time
    column fail with column_type_mismatch (422). sum/mean of a text column use the values that
    are numbers and ignore the others; the result counts them under 'not_numbers'."""
    out = group_aggregate(df, args.by, args.aggregations, sort=args.sort)
    result: dict[str, Any] = {
        "rows_in": df.height,
        "rows_out": out.height,
        "groups": out.height,
        "columns": out.columns[:50],
    }
    ignored = not_numbers(df, _summed(args.aggregations))
    if ignored:
        result["not_numbers"] = ignored
    message = f"Aggregated {df.height} rows into {out.height} groups{_ignored(ignored)}"
    return Outcome(out, message, result)


# --- excel/pivot --------------------------------------------------------------------------


class PivotArgs(TableArgs):
    """Arguments of excel/pivot."""

    index: list[str] = Field(
        min_length=1,
        description="Columns that identify an output row (the row labels).",
        json_schema_extra=INPUT_COLUMNS,
    )
    columns: str = Field(
        description="The column whose distinct values become new columns, named after the "
        "values as they read (120, 3.5, 2024-03-01, true; empty cells -> '(blank)'; a name "
        f"already taken gets _2), in order of first appearance; at most {MAX_PIVOT_COLUMNS}.",
        json_schema_extra=INPUT_COLUMNS,
    )
    values: str = Field(
        description="The column aggregated into the new columns' cells.",
        json_schema_extra=INPUT_COLUMNS,
    )
    aggregate: Literal["sum", "mean", "count", "min", "max", "first"] = Field(
        default="sum",
        description="How the values that meet in one cell are combined, with the types of "
        "excel/group-aggregate: sum keeps a number column's type, mean is a float, count a "
        "whole number, min/max/first the values column's type; sum and mean of a text column "
        "ignore values that are not numbers, of a date column fail. Cells with no values are "
        "empty, or 0 with 'count'.",
    )
    sort_columns: bool = Field(
        default=False,
        description="Order the new columns by value instead (numbers as numbers, dates as "
        "dates, text as text; '(blank)' last).",
    )

    @field_validator("index")
    @classmethod
    def _index(cls, index: list[str]) -> list[str]:
        return refuse_repeats(index, "index columns")

    @model_validator(mode="after")
    def _distinct_roles(self) -> PivotArgs:
        if self.columns in self.index or self.values in self.index:
            raise ValueError("'columns' and 'values' must not be index columns")
        if self.columns == self.values:
            raise ValueError("'columns' and 'values' must be different columns")
        return self

    def needed_columns(self) -> list[str]:
        return [*self.index, self.columns, self.values]


def pivot(
    df: pl.DataFrame,
    *,
    index: list[str],
    columns: str,
    values: str,
    aggregate: AggregateFn,
    sort_columns: bool = False,
    limits: Limits | None = None,
) -> pl.DataFrame:
    """A wide table: one row per index key, one column per distinct value of ``columns``;
    ``too_many_rows`` first if its rows times new columns pass ``limits.max_rows``."""
    require_columns(df.columns, [*index, columns, values])
    facts = numeric_facts(df, [values] if aggregate in ("sum", "mean") else [])
    # New columns are named after the values as they read (120, 3.5, 2024-03-01, true).
    label = text_form(columns, df.schema[columns])
    keys = df.select(pl.col(columns).alias("value"), label.alias("label")).unique(
        "label", maintain_order=True
    )
    if keys.height > MAX_PIVOT_COLUMNS:
        raise StepFailed(
            "too_many_columns",
            f"Column '{columns}' has {keys.height} distinct values; a pivot makes at most "
            f"{MAX_PIVOT_COLUMNS} columns.",
            details={"distinct": keys.height, "max": MAX_PIVOT_COLUMNS},
        )
    rows = int(df.select(pl.struct(index).n_unique()).item()) if df.height else 0
    what = f"Pivoting into {rows:,} rows × {keys.height:,} columns"
    check_size(rows * keys.height, limits or Limits(), doing=what, unit="cells")
    if sort_columns:  # by value: numbers as numbers, dates as dates, text as text
        keys = keys.sort("value", nulls_last=True, maintain_order=True)
    key_list: list[str | None] = keys.get_column("label").to_list()
    taken = set(index)
    names = [unique_name(k if k else BLANK_LABEL, taken) for k in key_list]
    if df.height == 0:
        empty = {n: pl.Series(n, [], dtype=df.schema[n]) for n in index}
        return pl.DataFrame(empty).with_columns(pl.lit(None).alias(n) for n in names)
    sentinel = "\x00blank"  # empty cells get a label polars can map (None is no dict key)
    mapping = {sentinel if k is None else k: n for k, n in zip(key_list, names, strict=True)}
    key, value = "\x00key", "\x00value"
    grouped = (
        df.with_columns(label.fill_null(sentinel).replace_strict(mapping).alias(key))
        .group_by([*index, key], maintain_order=True)
        .agg(aggregate_expr(aggregate, values, facts).alias(value))
    )
    wide = grouped.pivot(on=key, index=index, values=value, aggregate_function=None)
    wide = wide.select([*index, *names])
    if aggregate == "count":
        wide = wide.with_columns(pl.col(names).fill_null(0))
    return wide


@operation(
    "excel/pivot",
    example={"index": ["region"], "columns": "month", "values": "amount", "aggregate": "sum"},
    doing=lambda df, args: f"Pivoting column '{args.columns}'",
    facts={"MAX_PIVOT_COLUMNS": MAX_PIVOT_COLUMNS},
)
def pivoted(df: pl.DataFrame, args: PivotArgs, ctx: StepContext) -> Outcome:
    """Turn the distinct values of one column into new columns: one row per index key, each cell
    the sum (or mean, count, min, max, first) of the values column for that key and column
    value.

    At most {MAX_PIVOT_COLUMNS} new columns, named after the values as they read (120,
    2024-03-01). Cells have the types of excel/group-aggregate: sum keeps a number column's
    type, mean is a float, count a whole number, min/max/first the values column's type;
    sum/mean of a date column fail with column_type_mismatch (422), of a text column ignore
    values that are not numbers (counted under 'not_numbers')."""
    out = pivot(
        df,
        index=args.index,
        columns=args.columns,
        values=args.values,
        aggregate=args.aggregate,
        sort_columns=args.sort_columns,
        limits=ctx.limits,
    )
    new_columns = out.width - len(args.index)
    result: dict[str, Any] = {
        "rows_in": df.height,
        "rows_out": out.height,
        "new_columns": new_columns,
    }
    ignored = not_numbers(df, [args.values] if args.aggregate in ("sum", "mean") else [])
    if ignored:
        result["not_numbers"] = ignored
    message = f"Pivoted into {out.height} rows and {new_columns} value columns"
    return Outcome(out, message + _ignored(ignored), result)
