"""excel/unpivot: wide to long, one output row per input row and value column.

Its transform takes the ``StepContext`` for its limits: it may not make more rows than
``max_rows`` allows.

The value column has the value columns' type when they share one; whole and fractional numbers
together become Float64 (Int64 while all are whole), dates with datetimes Datetime; any other
mix becomes text, each cell as it reads (120, 3.5, true, 2024-03-01), and the result says which
columns were turned into text.  Columns with no values at all (type Null) do not count.
"""

from __future__ import annotations

from typing import Any

import polars as pl
from pydantic import Field, field_validator, model_validator

from chatflow.failures import StepFailed
from chatflow.operations.common import check_size, refuse_repeats, require_columns, unique_name
from chatflow.operations.limits import Limits
from chatflow.operations.registry import (
    INPUT_COLUMNS,
    StepContext,
)
from chatflow.operations.steps import Outcome, TableArgs, operation
from chatflow.operations.values import text_form
from chatflow.spreadsheets.cell_types import MAX_EXACT_INT, cell_kind


class UnpivotArgs(TableArgs):
    """Arguments of excel/unpivot."""

    id_columns: list[str] = Field(
        description="Columns kept on every output row (may be empty).",
        json_schema_extra=INPUT_COLUMNS,
    )
    value_columns: list[str] | None = Field(
        default=None,
        min_length=1,
        description="Columns turned into (variable, value) rows (default: every other column).",
        json_schema_extra=INPUT_COLUMNS,
    )
    variable_name: str = Field(
        default="variable", min_length=1, description="Name of the column holding column names."
    )
    value_name: str = Field(
        default="value", min_length=1, description="Name of the column holding the values."
    )
    drop_empty: bool = Field(default=False, description="Leave out rows whose value is empty.")

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

    def needed_columns(self) -> list[str]:
        return [*self.id_columns, *(self.value_columns or [])]


def value_type(df: pl.DataFrame, on: list[str]) -> tuple[pl.DataType, list[str]]:
    """The value column's type for value columns ``on``, and those of them turned into text."""
    types = {df.schema[c] for c in on} - {pl.Null()}
    if len(types) <= 1:
        return (types.pop() if types else pl.String()), []
    if all(t.is_integer() for t in types):
        return pl.Int64(), []
    if all(t.is_numeric() for t in types):
        ints = [c for c in on if df.schema[c].is_integer()]
        biggest = df.select(pl.max_horizontal(pl.col(ints).abs().max())).item() if ints else 0
        if (biggest or 0) <= MAX_EXACT_INT:  # every whole number is exact as a float
            return pl.Float64(), []
    if all(t == pl.Date or isinstance(t, pl.Datetime) for t in types):
        stamps = [t for t in types if isinstance(t, pl.Datetime)]
        if len({(t.time_unit, t.time_zone) for t in stamps}) == 1:
            return stamps[0], []
    return pl.String(), [c for c in on if df.schema[c] not in (pl.String, pl.Null)]


def unpivot(
    df: pl.DataFrame,
    *,
    id_columns: list[str],
    value_columns: list[str] | None,
    variable_name: str = "variable",
    value_name: str = "value",
    drop_empty: bool = False,
    limits: Limits | None = None,
) -> pl.DataFrame:
    """Long format, row by row: each input row gives one output row per value column;
    ``too_many_rows`` first if that passes ``limits.max_rows`` (counted before drop_empty)."""
    require_columns(df.columns, [*id_columns, *(value_columns or [])])
    on = _value_columns(df, id_columns, value_columns)
    doing = f"Unpivoting {df.height:,} rows × {len(on):,} value columns"
    check_size(df.height * len(on), limits or Limits(), doing=doing)
    target, _ = value_type(df, on)
    df = df.with_columns(
        text_form(c, df.schema[c]) if target == pl.String else pl.col(c).cast(target)
        for c in on
        if df.schema[c] != target
    )
    taken = {*df.columns, variable_name, value_name}
    row, variable, value = (unique_name(n, taken) for n in ("row", "variable", "value"))
    # Polars refuses output names that a value column has (unpivoting its own output again);
    # those columns are gone from the result, so the names are free once it is built.
    out = (
        df.with_row_index(row)
        .unpivot(on=on, index=[row, *id_columns], variable_name=variable, value_name=value)
        .sort(row, maintain_order=True)
        .drop(row)
        .rename({variable: variable_name, value: value_name})
    )
    return out.filter(pl.col(value_name).is_not_null()) if drop_empty else out


def _value_columns(df: pl.DataFrame, id_columns: list[str], given: list[str] | None) -> list[str]:
    on = given or [c for c in df.columns if c not in id_columns]
    if not on:
        raise StepFailed("nothing_to_unpivot", "There are no columns left to unpivot.")
    return on


@operation(
    "excel/unpivot",
    example={
        "id_columns": ["region"],
        "value_columns": ["jan", "feb", "mar"],
        "variable_name": "month",
        "value_name": "amount",
    },
    doing=lambda df, args: "Unpivoting",
)
def unpivoted(df: pl.DataFrame, args: UnpivotArgs, ctx: StepContext) -> Outcome:
    """Turn columns into rows (wide to long): every input row gives one row per value column with
    the id columns, the column's name and its value, in input order.

    Id columns keep their types. The value column keeps the value columns' type when they share
    one; whole and fractional numbers together become floats, dates with datetimes datetimes;
    any other mix (numbers with text, say) becomes text, each value as it reads (120, 3.5, true,
    2024-03-01), and the result lists those columns under 'converted_to_text' ('value_type'
    gives the value column's type)."""
    out = unpivot(
        df,
        id_columns=args.id_columns,
        value_columns=args.value_columns,
        variable_name=args.variable_name,
        value_name=args.value_name,
        drop_empty=args.drop_empty,
        limits=ctx.limits,
    )
    on = _value_columns(df, args.id_columns, args.value_columns)
    target, as_text = value_type(df, on)
    result: dict[str, Any] = {
        "rows_in": df.height,
        "rows_out": out.height,
        "value_type": cell_kind(target),
    }
    message = f"Unpivoted into {out.height} rows"
    if as_text:
        result["converted_to_text"] = as_text
        kinds = ", ".join(f"'{c}' ({cell_kind(df.schema[c])})" for c in as_text)
        message += f"; the value columns mix types, so the values of {kinds} became text"
    return Outcome(out, message, result)
