"""Row operations: remove duplicates, remove empty rows/columns, fill empty cells.

excel/filter-rows lives in ``filter_rows`` and excel/sort in ``sort_rows``.
"Empty" means null, "" or only whitespace.
"""

from __future__ import annotations

from typing import Any, Literal

import polars as pl
from pydantic import Field, field_validator, model_validator

from chatflow.operations.common import (
    column_type_mismatch,
    describe,
    describe_or,
    no_repeats_or_none,
    plural,
)
from chatflow.operations.registry import INPUT_COLUMNS
from chatflow.operations.steps import Outcome, TableArgs, operation
from chatflow.operations.values import (
    CellValue,
    is_empty,
    iso_value,
    number_value,
    parse_bool,
    shown,
    value_text,
)
from chatflow.spreadsheets.cell_types import cell_kind

# ---------------------------------------------------------------- excel/remove-duplicates


class RemoveDuplicatesArgs(TableArgs):
    """Arguments of excel/remove-duplicates."""

    columns: list[str] | None = Field(
        default=None,
        min_length=1,
        description=(
            "Rows count as duplicates when these columns are equal (default: all columns). "
            "Empty cells equal each other."
        ),
        json_schema_extra=INPUT_COLUMNS,
    )
    keep: Literal["first", "last", "none"] = Field(
        default="first",
        description=(
            "first / last: keep the first / last row of each group of duplicates; none: drop "
            "every row that has a duplicate. The row order is kept."
        ),
    )
    case_sensitive: bool = Field(
        default=True,
        description=(
            "false: compare text lower-cased ('ANN' equals 'ann'); the kept row keeps its "
            "original text."
        ),
    )

    _columns = field_validator("columns")(no_repeats_or_none)

    def needed_columns(self) -> list[str]:
        return list(self.columns or [])


def _by(columns: list[str] | None) -> str:
    return f" by {describe(columns)}" if columns else ""


@operation(
    "excel/remove-duplicates",
    example={"columns": ["email"], "keep": "first", "case_sensitive": False},
    title="remove duplicates",
    doing=lambda df, args: f"Removing duplicate rows{_by(args.columns)}",
)
def remove_duplicates(df: pl.DataFrame, args: RemoveDuplicatesArgs) -> Outcome:
    """Remove repeated rows, comparing all columns or some, keeping the first, the last or none of
    each group; the order of the remaining rows is unchanged.

    Cells compare by value: numbers as numbers, dates as dates, booleans as booleans, text as
    exact text (case_sensitive=false lower-cases text columns only). Columns keep their types."""
    columns = args.columns or df.columns
    keys = [
        pl.col(c).str.to_lowercase()
        if not args.case_sensitive and df.schema[c] == pl.String
        else pl.col(c)
        for c in columns
    ]
    row = pl.struct(keys)
    if args.keep == "first":
        keep = row.is_first_distinct()
    elif args.keep == "last":
        keep = row.is_last_distinct()
    else:
        keep = row.is_unique()
    out = df.filter(keep) if columns else df
    removed = df.height - out.height
    return Outcome(out, f"Removed {plural(removed, 'duplicate row')}", {"removed": removed})


# ---------------------------------------------------------------- excel/remove-empty


class RemoveEmptyArgs(TableArgs):
    """Arguments of excel/remove-empty."""

    axis: Literal["rows", "columns", "both"] = Field(
        default="rows",
        description=(
            "rows: drop rows whose every cell is empty; columns: drop columns whose every cell "
            "is empty (a table whose cells are all empty keeps its columns); both: both."
        ),
    )


_AXES = {"rows": "rows", "columns": "columns", "both": "rows and columns"}


@operation(
    "excel/remove-empty",
    example={"axis": "both"},
    title="remove empty rows/columns",
    doing=lambda df, args: f"Removing empty {_AXES[args.axis]}",
)
def remove_empty(df: pl.DataFrame, args: RemoveEmptyArgs) -> Outcome:
    """Remove rows, columns or both whose cells are all empty (no value, or only spaces).

    Number, date and boolean cells are empty only when they have no value (0 and false are
    values). Columns keep their types."""
    empties = [is_empty(pl.col(c), dtype) for c, dtype in df.schema.items()]
    out = df
    dropped: list[str] = []
    if args.axis in ("columns", "both") and df.width:
        flags = df.select(e.all() for e in empties).row(0)
        empty_columns = [c for c, flag in zip(df.columns, flags, strict=True) if flag]
        if len(empty_columns) < df.width:
            dropped = empty_columns
            out = out.drop(dropped)
    if args.axis in ("rows", "both") and df.width:
        out = out.filter(~pl.all_horizontal(is_empty(pl.col(c), t) for c, t in out.schema.items()))
    removed = df.height - out.height
    message = f"Removed {plural(removed, 'empty row')} and {plural(len(dropped), 'empty column')}"
    return Outcome(out, message, {"rows_removed": removed, "columns_removed": dropped})


# ---------------------------------------------------------------- excel/fill-empty


class FillEmptyArgs(TableArgs):
    """Arguments of excel/fill-empty."""

    columns: list[str] | None = Field(
        default=None,
        min_length=1,
        description="Columns to fill (default: all columns).",
        json_schema_extra=INPUT_COLUMNS,
    )
    strategy: Literal["value", "down", "up"] = Field(
        description=(
            "value: put value in every empty cell; down: copy the nearest value above (like "
            "un-merging cells); up: the nearest value below. Empty cells with no value above "
            "(below) stay empty."
        )
    )
    value: CellValue | None = Field(
        default=None, description="The fill value, required with strategy=value (only then)."
    )

    _columns = field_validator("columns")(no_repeats_or_none)

    @model_validator(mode="after")
    def _value(self) -> FillEmptyArgs:
        if self.strategy == "value":
            if self.value is None or not value_text(self.value).strip():
                raise ValueError("strategy 'value' needs a non-empty value")
        elif self.value is not None:
            raise ValueError(f"value only applies with strategy 'value', not '{self.strategy}'")
        return self

    def needed_columns(self) -> list[str]:
        return list(self.columns or [])


def _typed_value(value: CellValue, column: str, dtype: pl.DataType) -> tuple[Any, pl.DataType]:
    """The fill value in the column's type, and the type the filled column has: an integer
    column takes whole numbers (and becomes float for 3.5), a float column numbers, a boolean
    column true/false, a date or datetime column ISO dates; text columns take the value as text.
    column_type_mismatch for a value of another kind."""
    text = value_text(value).strip()
    number = None if isinstance(value, bool) else number_value(text)
    if dtype == pl.String:
        return value_text(value), dtype
    if dtype.is_integer() and number is not None:
        if number.is_integer() and abs(number) < 2**63:
            return int(value) if isinstance(value, int) else int(number), dtype
        return number, pl.Float64()
    if dtype.is_float() and number is not None:
        return number, dtype
    if dtype == pl.Boolean:
        flag = pl.select(parse_bool(pl.lit(text))).item()
        if flag is not None:
            return flag, dtype
    if dtype == pl.Date or isinstance(dtype, pl.Datetime):
        moment = iso_value(text)
        if moment is not None and (isinstance(dtype, pl.Datetime) or not moment[1]):
            stamp = moment[0]
            return (stamp if isinstance(dtype, pl.Datetime) else stamp.date()), dtype
    expected = {
        "integer": "a number",
        "float": "a number",
        "boolean": "true or false",
        "date": "an ISO date such as 2024-03-01",
        "datetime": "an ISO date or datetime such as 2024-03-01 12:00",
    }.get(cell_kind(dtype), "a value of that type")
    raise column_type_mismatch(
        column,
        cell_kind(dtype),
        f"the fill value {shown(value)} is not {expected}. Convert the column with "
        "excel/convert-types first to fill it with other values.",
    )


def _value_type(value: CellValue) -> pl.DataType:
    """The type a column with no values at all takes from its fill value."""
    if isinstance(value, bool):
        return pl.Boolean()
    if isinstance(value, int):
        return pl.Int64()
    return pl.Float64() if isinstance(value, float) else pl.String()


@operation(
    "excel/fill-empty",
    example={"columns": ["region"], "strategy": "down"},
    title="fill empty cells",
    doing=lambda df, args: (
        f"Filling empty cells of {describe_or(args.columns, 'all columns')} ({args.strategy})"
    ),
)
def fill_empty(df: pl.DataFrame, args: FillEmptyArgs) -> Outcome:
    """Fill empty cells with a value, or with the nearest value above (down) or below (up).

    Columns keep their types: a number column is filled with the number given (0 stays the
    number 0; 3.5 makes an integer column float), a boolean column with true/false, a date or
    datetime column with an ISO date, a text column with the value as text; a value of another
    kind fails with column_type_mismatch (422) naming the column and its type. A column with no
    values at all takes the value's type."""
    new: list[pl.Series] = []
    filled: dict[str, int] = {}
    for c in args.columns or df.columns:
        dtype = df.schema[c]
        empty = df.select(is_empty(pl.col(c), dtype)).to_series()
        if not empty.any():
            continue
        column = pl.col(c)
        present = pl.when(empty).then(None).otherwise(column)
        if args.strategy == "down":
            filler = present.forward_fill()
        elif args.strategy == "up":
            filler = present.backward_fill()
        else:
            assert args.value is not None
            if empty.all() and dtype in (pl.String, pl.Null):
                dtype = _value_type(args.value)  # no values yet: the column takes the value's
                column = pl.lit(None, dtype=dtype)
            fill, target = _typed_value(args.value, c, dtype)
            column = column.cast(target)  # only integer -> float for a fractional value
            filler = pl.lit(fill, dtype=target)
        done = df.select(
            pl.when(empty).then(pl.coalesce(filler, column)).otherwise(column).alias(c),
            (empty & filler.is_not_null()).sum().alias("filled"),
        )
        new.append(done[c])
        if done["filled"][0]:
            filled[c] = int(done["filled"][0])
    out = df.with_columns(new) if new else df
    total = sum(filled.values())
    return Outcome(
        out,
        f"Filled {plural(total, 'empty cell')}",
        {"cells_filled": total, "by_column": filled},
    )
