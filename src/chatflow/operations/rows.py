"""Row operations: remove duplicates, remove empty rows/columns, fill empty cells.

excel/filter-rows lives in ``filter_rows`` and excel/sort in ``sort_rows``.
"Empty" means null, "" or only whitespace.
"""

from __future__ import annotations

from typing import Literal

import polars as pl
from pydantic import Field, field_validator, model_validator

from chatflow.operations.common import describe, no_repeats_or_none, plural
from chatflow.operations.registry import (
    OperationArgs,
    StepContext,
    StepFailed,
    StepOutput,
    registry,
)
from chatflow.operations.steps import Outcome, SheetArg, TableOutputArg, run_table_step
from chatflow.operations.values import CellValue, is_empty, value_text

# ---------------------------------------------------------------- excel/remove-duplicates


class RemoveDuplicatesArgs(OperationArgs):
    """Arguments of excel/remove-duplicates."""

    columns: list[str] | None = Field(
        default=None,
        min_length=1,
        description=(
            "Rows count as duplicates when these columns are equal (default: all columns). "
            "Empty cells equal each other."
        ),
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
    sheet: SheetArg = None
    output: TableOutputArg = None

    _columns = field_validator("columns")(no_repeats_or_none)


def remove_duplicates(df: pl.DataFrame, args: RemoveDuplicatesArgs) -> Outcome:
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


@registry.register(
    "excel/remove-duplicates",
    description=(
        "Remove repeated rows, comparing all columns or some, keeping the first, the last or "
        "none of each group; the order of the remaining rows is unchanged."
    ),
    args=RemoveDuplicatesArgs,
    example={"columns": ["email"], "keep": "first", "case_sensitive": False},
    input_columns=lambda args: list(args.columns or []),
)
def run_remove_duplicates(ctx: StepContext, args: RemoveDuplicatesArgs) -> StepOutput:
    by = f" by {describe(args.columns)}" if args.columns else ""
    return run_table_step(
        ctx,
        title="remove duplicates",
        doing=f"Removing duplicate rows{by}",
        sheet=args.sheet,
        output=args.output,
        needed=args.columns or [],
        transform=lambda df: remove_duplicates(df, args),
    )


# ---------------------------------------------------------------- excel/remove-empty


class RemoveEmptyArgs(OperationArgs):
    """Arguments of excel/remove-empty."""

    axis: Literal["rows", "columns", "both"] = Field(
        default="rows",
        description=(
            "rows: drop rows whose every cell is empty; columns: drop columns whose every cell "
            "is empty (a table whose cells are all empty keeps its columns); both: both."
        ),
    )
    sheet: SheetArg = None
    output: TableOutputArg = None


def remove_empty(df: pl.DataFrame, args: RemoveEmptyArgs) -> Outcome:
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


@registry.register(
    "excel/remove-empty",
    description=(
        "Remove rows, columns or both whose cells are all empty (no value, or only spaces)."
    ),
    args=RemoveEmptyArgs,
    example={"axis": "both"},
)
def run_remove_empty(ctx: StepContext, args: RemoveEmptyArgs) -> StepOutput:
    what = {"rows": "rows", "columns": "columns", "both": "rows and columns"}[args.axis]
    return run_table_step(
        ctx,
        title="remove empty rows/columns",
        doing=f"Removing empty {what}",
        sheet=args.sheet,
        output=args.output,
        needed=[],
        transform=lambda df: remove_empty(df, args),
    )


# ---------------------------------------------------------------- excel/fill-empty


class FillEmptyArgs(OperationArgs):
    """Arguments of excel/fill-empty."""

    columns: list[str] | None = Field(
        default=None, min_length=1, description="Columns to fill (default: all columns)."
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
    sheet: SheetArg = None
    output: TableOutputArg = None

    _columns = field_validator("columns")(no_repeats_or_none)

    @model_validator(mode="after")
    def _value(self) -> FillEmptyArgs:
        if self.strategy == "value":
            if self.value is None or not value_text(self.value).strip():
                raise ValueError("strategy 'value' needs a non-empty value")
        elif self.value is not None:
            raise ValueError(f"value only applies with strategy 'value', not '{self.strategy}'")
        return self


def _fill_value(value: CellValue, column: str, dtype: pl.DataType) -> pl.Expr:
    text = value_text(value)
    if dtype == pl.String:
        return pl.lit(text, dtype=pl.String)
    try:
        converted = pl.Series([text], dtype=pl.String).cast(dtype, strict=True)
    except pl.exceptions.PolarsError:
        raise StepFailed(
            "invalid_value",
            f"Column '{column}' holds {dtype} values; {text!r} is not one.",
            details={"column": column, "value": text},
        ) from None
    return pl.lit(converted.item(), dtype=dtype)


def fill_empty(df: pl.DataFrame, args: FillEmptyArgs) -> Outcome:
    new: list[pl.Series] = []
    filled: dict[str, int] = {}
    for c in args.columns or df.columns:
        dtype = df.schema[c]
        empty = df.select(is_empty(pl.col(c), dtype)).to_series()
        if not empty.any():
            continue
        present = pl.when(empty).then(None).otherwise(pl.col(c))
        if args.strategy == "down":
            filler = present.forward_fill()
        elif args.strategy == "up":
            filler = present.backward_fill()
        else:
            assert args.value is not None
            filler = _fill_value(args.value, c, dtype)
        done = df.select(
            pl.when(empty).then(pl.coalesce(filler, pl.col(c))).otherwise(pl.col(c)).alias(c),
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


@registry.register(
    "excel/fill-empty",
    description=(
        "Fill empty cells with a value, or with the nearest value above (down) or below (up)."
    ),
    args=FillEmptyArgs,
    example={"columns": ["region"], "strategy": "down"},
    input_columns=lambda args: list(args.columns or []),
)
def run_fill_empty(ctx: StepContext, args: FillEmptyArgs) -> StepOutput:
    where = describe(args.columns) if args.columns else "all columns"
    return run_table_step(
        ctx,
        title="fill empty cells",
        doing=f"Filling empty cells of {where} ({args.strategy})",
        sheet=args.sheet,
        output=args.output,
        needed=args.columns or [],
        transform=lambda df: fill_empty(df, args),
    )
