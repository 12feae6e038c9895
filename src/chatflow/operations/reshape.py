"""excel/group-aggregate and excel/pivot.

Numbers: columns are text (see ``chatflow.spreadsheets.reading``), so sum and mean read each value
as a number and treat anything that is not one (blank, "n/a", "1,234") as empty, the way
``cast(strict=False)`` does; sums of whole numbers stay whole (Int64), anything else is Float64.
min and max compare numerically when every value of the column is a number (inferred type
integer or float, see ``column_types``), otherwise as text (ISO dates compare correctly as text).
Groups keep the order in which their keys first appear unless sorting is asked for; empty keys
form a group of their own.
"""

from __future__ import annotations

from typing import Any, Literal

import polars as pl
from pydantic import ConfigDict, Field, field_validator, model_validator

from chatflow.operations.column_types import ColumnFacts, column_facts
from chatflow.operations.common import refuse_repeats, repeated, require_columns, unique_name
from chatflow.operations.registry import (
    OperationArgs,
    StepContext,
    StepFailed,
    StepOutput,
    registry,
)
from chatflow.operations.steps import Outcome, OutputArg, SheetArg, run_step

AggregateFn = Literal["count", "sum", "mean", "min", "max", "count_distinct", "first", "last"]
MAX_PIVOT_COLUMNS = 1000
BLANK_LABEL = "(blank)"


def aggregate_expr(fn: AggregateFn, column: str | None, facts: dict[str, ColumnFacts]) -> pl.Expr:
    """One aggregation over a group: see the module docstring for how text becomes numbers."""
    if column is None:
        return pl.len().cast(pl.Int64)  # count of rows
    col = pl.col(column)
    fact = facts[column]
    if fn == "count":
        return col.count().cast(pl.Int64)
    if fn == "count_distinct":
        return col.drop_nulls().n_unique().cast(pl.Int64)
    if fn == "first":
        return col.first()
    if fn == "last":
        return col.last()
    if fn == "sum":
        return fact.numeric_expr().sum()
    if fn == "mean":
        return fact.numeric_expr().cast(pl.Float64).mean()
    value = fact.numeric_expr() if fact.numeric else col
    return value.min() if fn == "min" else value.max()


# --- excel/group-aggregate ----------------------------------------------------------------


class Aggregation(OperationArgs):
    """One output column of excel/group-aggregate."""

    model_config = ConfigDict(extra="forbid", serialize_by_alias=True)

    column: str | None = Field(
        default=None,
        description="The column to aggregate; leave it out with fn='count' to count rows.",
    )
    fn: AggregateFn = Field(
        description="count: non-empty values (rows, without column); sum, mean: of the values "
        "that are numbers, others ignored (sum of nothing is 0); min, max: numeric when every "
        "value is a number, else text order; count_distinct: distinct non-empty values; "
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


class GroupAggregateArgs(OperationArgs):
    """Arguments of excel/group-aggregate."""

    by: list[str] = Field(
        default_factory=list,
        description="Columns whose values form the groups (empty: one row for the whole table).",
    )
    aggregations: list[Aggregation] = Field(
        min_length=1, max_length=200, description="The output columns, after the group columns."
    )
    sort: bool = Field(
        default=False,
        description="Sort the groups by their key values (as text, empty last) instead of the "
        "order in which they first appear.",
    )
    sheet: SheetArg = None
    output: OutputArg = None

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


def _needed_by_group(args: GroupAggregateArgs) -> list[str]:
    return list(
        dict.fromkeys([*args.by, *(a.column for a in args.aggregations if a.column is not None)])
    )


def group_aggregate(
    df: pl.DataFrame, by: list[str], aggregations: list[Aggregation], *, sort: bool = False
) -> pl.DataFrame:
    """One row per group with the aggregations (or one row in all without ``by``)."""
    needed = list(dict.fromkeys(a.column for a in aggregations if a.column is not None))
    require_columns(df.columns, [*by, *needed])
    facts = column_facts(df, needed)
    exprs = [aggregate_expr(a.fn, a.column, facts).alias(a.name) for a in aggregations]
    if not by:
        return df.select(exprs)
    out = df.group_by(by, maintain_order=True).agg(exprs)
    return out.sort(by, nulls_last=True, maintain_order=True) if sort else out


@registry.register(
    "excel/group-aggregate",
    description=(
        "Group rows by the values of some columns and compute count, sum, mean, min, max, "
        "count_distinct, first or last of other columns, one row per group. Text that is not a "
        "number is ignored by sum and mean (treated as empty)."
    ),
    args=GroupAggregateArgs,
    example={
        "by": ["region"],
        "aggregations": [
            {"column": "amount", "fn": "sum", "as": "total"},
            {"fn": "count", "as": "orders"},
        ],
    },
    input_columns=_needed_by_group,
)
def run_group_aggregate(ctx: StepContext, args: GroupAggregateArgs) -> StepOutput:
    """Group and aggregate."""

    def aggregate(df: pl.DataFrame) -> Outcome:
        out = group_aggregate(df, args.by, args.aggregations, sort=args.sort)
        result: dict[str, Any] = {
            "rows_in": df.height,
            "rows_out": out.height,
            "groups": out.height,
            "columns": out.columns[:50],
        }
        return Outcome(out, f"Aggregated {df.height} rows into {out.height} groups", result)

    return run_step(
        ctx,
        sheet=args.sheet,
        output=args.output,
        needed=_needed_by_group(args),
        doing=lambda df: f"Aggregating {df.height} rows",
        transform=aggregate,
    )


# --- excel/pivot --------------------------------------------------------------------------


class PivotArgs(OperationArgs):
    """Arguments of excel/pivot."""

    index: list[str] = Field(
        min_length=1, description="Columns that identify an output row (the row labels)."
    )
    columns: str = Field(
        description="The column whose distinct values become new columns, named after the "
        "values (empty cells -> '(blank)'; a name already taken gets _2), in order of first "
        f"appearance; at most {MAX_PIVOT_COLUMNS}."
    )
    values: str = Field(description="The column aggregated into the new columns' cells.")
    aggregate: Literal["sum", "mean", "count", "min", "max", "first"] = Field(
        default="sum",
        description="How the values that meet in one cell are combined (as in "
        "excel/group-aggregate: sum and mean ignore non-numbers). Cells with no values are "
        "empty, or 0 with 'count'.",
    )
    sort_columns: bool = Field(
        default=False, description="Order the new columns by value (as text) instead."
    )
    sheet: SheetArg = None
    output: OutputArg = None

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


def pivot(
    df: pl.DataFrame,
    *,
    index: list[str],
    columns: str,
    values: str,
    aggregate: AggregateFn,
    sort_columns: bool = False,
) -> pl.DataFrame:
    """A wide table: one row per index key, one column per distinct value of ``columns``."""
    require_columns(df.columns, [*index, columns, values])
    keys = df.get_column(columns).cast(pl.String).unique(maintain_order=True)
    if keys.len() > MAX_PIVOT_COLUMNS:
        raise StepFailed(
            "too_many_columns",
            f"Column '{columns}' has {keys.len()} distinct values; a pivot makes at most "
            f"{MAX_PIVOT_COLUMNS} columns.",
            details={"distinct": keys.len(), "max": MAX_PIVOT_COLUMNS},
        )
    key_list: list[str | None] = keys.to_list()
    if sort_columns:
        key_list.sort(key=lambda k: (k is None, k or ""))
    taken = set(index)
    names = [unique_name(k if k else BLANK_LABEL, taken) for k in key_list]
    if df.height == 0:
        empty = {n: pl.Series(n, [], dtype=df.schema[n]) for n in index}
        return pl.DataFrame(empty).with_columns(pl.lit(None).alias(n) for n in names)
    sentinel = "\x00blank"  # empty cells get a label polars can map (None is no dict key)
    mapping = {sentinel if k is None else k: n for k, n in zip(key_list, names, strict=True)}
    facts = column_facts(df, [values])
    key, value = "\x00key", "\x00value"
    grouped = (
        df.with_columns(
            pl.col(columns).cast(pl.String).fill_null(sentinel).replace_strict(mapping).alias(key)
        )
        .group_by([*index, key], maintain_order=True)
        .agg(aggregate_expr(aggregate, values, facts).alias(value))
    )
    wide = grouped.pivot(on=key, index=index, values=value, aggregate_function=None)
    wide = wide.select([*index, *names])
    if aggregate == "count":
        wide = wide.with_columns(pl.col(names).fill_null(0))
    return wide


@registry.register(
    "excel/pivot",
    description=(
        "Turn the distinct values of one column into new columns: one row per index key, each "
        "cell the sum (or mean, count, min, max, first) of the values column for that key and "
        f"column value. At most {MAX_PIVOT_COLUMNS} new columns."
    ),
    args=PivotArgs,
    example={"index": ["region"], "columns": "month", "values": "amount", "aggregate": "sum"},
    input_columns=lambda args: [*args.index, args.columns, args.values],
)
def run_pivot(ctx: StepContext, args: PivotArgs) -> StepOutput:
    """Pivot the table."""

    def pivoted(df: pl.DataFrame) -> Outcome:
        out = pivot(
            df,
            index=args.index,
            columns=args.columns,
            values=args.values,
            aggregate=args.aggregate,
            sort_columns=args.sort_columns,
        )
        new_columns = out.width - len(args.index)
        result = {"rows_in": df.height, "rows_out": out.height, "new_columns": new_columns}
        message = f"Pivoted into {out.height} rows and {new_columns} value columns"
        return Outcome(out, message, result)

    return run_step(
        ctx,
        sheet=args.sheet,
        output=args.output,
        needed=[*args.index, args.columns, args.values],
        doing=f"Pivoting column '{args.columns}'",
        transform=pivoted,
    )
