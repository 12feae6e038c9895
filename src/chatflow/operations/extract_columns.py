"""excel/extract-columns-to-file: keep some columns, optionally drop repeated rows, write them.

Not a plain table transform: the oldest operation always writes its file (a derived name when
``output`` is not given) and words its result in its own way, which clients rely on, so it is
its own ``run`` (``writes_itself=True``), built from ``open_step``."""

from __future__ import annotations

import polars as pl
from pydantic import Field, field_validator

from chatflow.operations.common import describe, refuse_repeats, require_columns
from chatflow.operations.registry import StepContext, StepOutput
from chatflow.operations.steps import OutputName, TableArgs, open_step, operation


class ExtractColumnsArgs(TableArgs):
    """Arguments of excel/extract-columns-to-file."""

    columns: list[str] = Field(
        min_length=1, description="Columns to keep, in the order they should appear."
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
    writes_itself=True,
)
def run(ctx: StepContext, args: ExtractColumnsArgs) -> StepOutput:
    """Keep only the given columns of the input, in the given order, optionally dropping repeated
    rows, and write them to a new file.

    Columns keep their types (numbers, dates, booleans stay typed cells; text stays text,
    '01234' included); repeated rows are compared by value."""
    df = open_step(ctx, args.sheet, needed=args.needed_columns())
    ctx.report(50, f"Processing {describe(args.columns)}")
    out = extract_columns(df, args.columns, args.remove_duplicates)
    ctx.report(75, f"Writing {out.height} rows")
    written = ctx.write_table(out, name=args.output, sheet=None)
    return StepOutput(
        table=out,
        files=[written],
        result={"rows_in": df.height, "rows_out": out.height, "columns": list(args.columns)},
        message="Step completed successfully",
        wrote_table=True,
    )
