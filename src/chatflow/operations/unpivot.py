"""excel/unpivot: wide to long, one output row per input row and value column."""

from __future__ import annotations

import polars as pl
from pydantic import Field, field_validator, model_validator

from chatflow.operations.common import refuse_repeats, require_columns, unique_name
from chatflow.operations.registry import (
    OperationArgs,
    StepContext,
    StepFailed,
    StepOutput,
    registry,
)
from chatflow.operations.steps import Outcome, OutputArg, SheetArg, run_step


class UnpivotArgs(OperationArgs):
    """Arguments of excel/unpivot."""

    id_columns: list[str] = Field(description="Columns kept on every output row (may be empty).")
    value_columns: list[str] | None = Field(
        default=None,
        min_length=1,
        description="Columns turned into (variable, value) rows (default: every other column).",
    )
    variable_name: str = Field(
        default="variable", min_length=1, description="Name of the column holding column names."
    )
    value_name: str = Field(
        default="value", min_length=1, description="Name of the column holding the values."
    )
    drop_empty: bool = Field(default=False, description="Leave out rows whose value is empty.")
    sheet: SheetArg = None
    output: OutputArg = None

    @field_validator("id_columns")
    @classmethod
    def _ids(cls, columns: list[str]) -> list[str]:
        return refuse_repeats(columns, "id columns")

    @field_validator("value_columns")
    @classmethod
    def _values(cls, columns: list[str] | None) -> list[str] | None:
        return None if columns is None else refuse_repeats(columns, "value columns")

    @model_validator(mode="after")
    def _distinct_roles(self) -> UnpivotArgs:
        both = set(self.id_columns) & set(self.value_columns or [])
        if both:
            raise ValueError(f"columns both id and value: {', '.join(sorted(both))}")
        if self.variable_name == self.value_name:
            raise ValueError("variable_name and value_name must differ")
        clash = {self.variable_name, self.value_name} & set(self.id_columns)
        if clash:
            raise ValueError(f"output names clash with id columns: {', '.join(sorted(clash))}")
        return self


def unpivot(
    df: pl.DataFrame,
    *,
    id_columns: list[str],
    value_columns: list[str] | None,
    variable_name: str = "variable",
    value_name: str = "value",
    drop_empty: bool = False,
) -> pl.DataFrame:
    """Long format, row by row: each input row gives one output row per value column."""
    require_columns(df.columns, [*id_columns, *(value_columns or [])])
    on = value_columns or [c for c in df.columns if c not in id_columns]
    if not on:
        raise StepFailed("nothing_to_unpivot", "There are no columns left to unpivot.")
    if len({df.schema[c] for c in on}) > 1:  # mixed types: everything as text
        df = df.with_columns(pl.col(on).cast(pl.String))
    row = unique_name("row", {*df.columns, variable_name, value_name})
    out = (
        df.with_row_index(row)
        .unpivot(
            on=on, index=[row, *id_columns], variable_name=variable_name, value_name=value_name
        )
        .sort(row, maintain_order=True)
        .drop(row)
    )
    return out.filter(pl.col(value_name).is_not_null()) if drop_empty else out


@registry.register(
    "excel/unpivot",
    description=(
        "Turn columns into rows (wide to long): every input row gives one row per value column "
        "with the id columns, the column's name and its value, in input order."
    ),
    args=UnpivotArgs,
    example={
        "id_columns": ["region"],
        "value_columns": ["jan", "feb", "mar"],
        "variable_name": "month",
        "value_name": "amount",
    },
    input_columns=lambda args: [*args.id_columns, *(args.value_columns or [])],
)
def run_unpivot(ctx: StepContext, args: UnpivotArgs) -> StepOutput:
    """Unpivot the table."""

    def unpivoted(df: pl.DataFrame) -> Outcome:
        out = unpivot(
            df,
            id_columns=args.id_columns,
            value_columns=args.value_columns,
            variable_name=args.variable_name,
            value_name=args.value_name,
            drop_empty=args.drop_empty,
        )
        result = {"rows_in": df.height, "rows_out": out.height}
        return Outcome(out, f"Unpivoted into {out.height} rows", result)

    return run_step(
        ctx,
        sheet=args.sheet,
        output=args.output,
        needed=[*args.id_columns, *(args.value_columns or [])],
        doing="Unpivoting",
        transform=unpivoted,
    )
