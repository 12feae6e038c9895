"""excel/extract-columns-to-file: keep some columns, optionally drop repeated rows, write them.

The oldest operation always writes its file (a derived name when ``output`` is not given) and
words its result in its own way, which clients rely on: its transform takes the
``StepContext`` to write the table itself (``Outcome.wrote_table``)."""

from __future__ import annotations

import polars as pl
from pydantic import Field, field_validator

from chatflow.operations.common import describe, refuse_repeats, require_columns
from chatflow.operations.registry import INPUT_COLUMNS, StepContext
from chatflow.operations.steps import Outcome, OutputName, TableArgs, operation


class ExtractColumnsArgs(TableArgs):
    """Arguments of excel/extract-columns-to-file."""

    columns: list[str] = Field(
        min_length=1,
        description="Columns to keep, in the order they should appear.",
        json_schema_extra=INPUT_COLUMNS,
    )
    remove_duplicates: bool = Field(
        default=False, description="Drop repeated rows, keeping the first of each."
    )
    sheet: str | None = Field(
        default=None, description="Sheet of an xlsx input to read (default: the first sheet)."
    )
    output: OutputName | None = Field(
        default=None, description="Output file name (default: derived from the input name)."
    )

    @field_validator("columns")
    @classmethod
    def _no_repeats(cls, columns: list[str]) -> list[str]:
        return refuse_repeats(columns)

    def needed_columns(self) -> list[str]:
        return list(self.columns)


def extract_columns(df: pl.DataFrame, columns: list[str], remove_duplicates: bool) -> pl.DataFrame:
    """``columns`` of ``df`` in the given order; repeated rows dropped (first kept) if asked."""
    require_columns(df.columns, columns)
    out = df.select(columns)
    if remove_duplicates:
        out = out.unique(keep="first", maintain_order=True)
    return out


@operation(
    "excel/extract-columns-to-file",
    example={"columns": ["postal_code"], "remove_duplicates": True},
    doing=lambda df, args: f"Processing {describe(args.columns)}",
)
def extracted(df: pl.DataFrame, args: ExtractColumnsArgs, ctx: StepContext) -> Outcome:
    """Keep only the given columns of the input, in the given order, optionally dropping repeated
    rows, and write them to a new file.

    Columns keep their types (numbers, dates, booleans stay typed cells; text stays text,
    '01234' included); repeated rows are compared by value."""
    out = extract_columns(df, args.columns, args.remove_duplicates)
    ctx.report(75, f"Writing {out.height} rows")
    written = ctx.write_table(out, name=args.output, sheet=None)
    result = {"rows_in": df.height, "rows_out": out.height, "columns": list(args.columns)}
    return Outcome(out, "Step completed successfully", result, [written], wrote_table=True)
