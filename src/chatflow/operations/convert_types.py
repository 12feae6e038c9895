"""excel/convert-types: turn text columns into numbers, dates, datetimes or booleans, and typed
columns into another type or back to text.

Columns are read typed (``spreadsheets.cell_types``); text columns are what is left: mixed
columns, numbers with decimal commas or thousands separators, dates in local formats, booleans
as words.  Text is parsed (``values``); a typed column is converted natively (a float to int
only when whole, numbers to bool only 1/0, dates to datetimes at midnight), and a conversion
that makes no sense (a date to a number, a number to a date) is refused with
``column_type_mismatch``.  Empty cells (null, or text of only spaces) become null and are never
errors.
"""

from __future__ import annotations

from typing import Any, Literal

import polars as pl
from pydantic import Field, field_validator, model_validator

from chatflow.failures import StepFailed
from chatflow.operations.common import (
    column_type_mismatch,
    describe,
    no_repeats_or_none,
    plural,
)
from chatflow.operations.patterns import check_strftime
from chatflow.operations.registry import INPUT_COLUMNS
from chatflow.operations.steps import Outcome, TableArgs, operation
from chatflow.operations.values import (
    is_empty,
    parse_bool,
    parse_date,
    parse_datetime,
    parse_float,
    parse_int,
    text_form,
)
from chatflow.spreadsheets.cell_types import cell_kind

Target = Literal["string", "text", "int", "float", "date", "datetime", "bool"]
_EXAMPLES = 5
_WHAT = {
    "int": "a whole number",
    "float": "a number",
    "date": "a date",
    "datetime": "a date and time",
    "bool": "true/false, yes/no or 1/0",
}
# The types (cell_types.cell_kind) a typed column may be converted from, by target; text and
# all-empty columns convert to every target, and every column converts to string.
_FROM = {
    "int": ("integer", "float", "boolean"),
    "float": ("integer", "float", "boolean"),
    "bool": ("integer", "float", "boolean"),
    "date": ("date", "datetime"),
    "datetime": ("date", "datetime"),
}


class ConvertTypesArgs(TableArgs):
    """Arguments of excel/convert-types; give column or columns."""

    column: str | None = Field(
        default=None, description="The column to convert.", json_schema_extra=INPUT_COLUMNS
    )
    columns: list[str] | None = Field(
        default=None,
        min_length=1,
        description="Several columns to convert the same way.",
        json_schema_extra=INPUT_COLUMNS,
    )
    to: Target = Field(
        description=(
            "Target type. From text: int: whole numbers ('12', '+12', '12.0', '1,234'); "
            "float: numbers ('3.5', '-.5', '1e3', '1,234.5', with decimal_comma '3,5', "
            "'1.234,5'); thousands separators only in their proper place. date / datetime: ISO "
            "text ('2024-02-29', '2024-02-29 13:45:00') or text in format. bool: true/false, "
            "yes/no, 1/0 in any case. From typed columns: integer, float and boolean columns "
            "convert to int (a float only when whole; true/false are 1/0), float and bool (only "
            "1 and 0); date and datetime columns to date (a datetime loses its time) and "
            "datetime (a date at midnight); other conversions (a date to a number, a number to "
            "a date) fail with column_type_mismatch. string (or text): any column as text, "
            "numbers in shortest form without '.0' ('120', '3.5'), booleans true/false, dates "
            "ISO, datetimes '2024-02-29 13:45:00'."
        )
    )
    format: str | None = Field(
        default=None,
        description=(
            "strftime-style format of date/datetime text, e.g. '%d/%m/%Y' or '%d.%m.%Y %H:%M'; "
            "ISO text is accepted as well. Only with to=date or datetime."
        ),
    )
    on_error: Literal["null", "keep", "fail"] = Field(
        default="null",
        description=(
            "For non-empty cells that do not convert. null: they become empty; keep: a text "
            "column stays text, converted cells rewritten in canonical form ('1234', '3.5', "
            "'2024-02-29', 'true') and the others unchanged, and a typed column is left as it "
            "was (numbers stay numbers); fail: the step fails with error "
            "conversion_failed naming the first such cell (row numbers count data rows from "
            "1, the header excluded)."
        ),
    )
    decimal_comma: bool = Field(
        default=False,
        description=(
            "Numbers use a decimal comma ('3,5', '1.234,5', '1 234,5'); only with int or float."
        ),
    )

    _columns = field_validator("columns")(no_repeats_or_none)

    @field_validator("format")
    @classmethod
    def _format(cls, fmt: str | None) -> str | None:
        return None if fmt is None else check_strftime(fmt)

    @model_validator(mode="after")
    def _consistent(self) -> ConvertTypesArgs:
        if (self.column is None) == (self.columns is None):
            raise ValueError("give exactly one of column or columns")
        if self.format is not None and self.to not in ("date", "datetime"):
            raise ValueError("format only applies with to=date or to=datetime")
        if self.decimal_comma and self.to not in ("int", "float"):
            raise ValueError("decimal_comma only applies with to=int or to=float")
        return self

    @field_validator("to")
    @classmethod
    def _to(cls, to: str) -> str:
        return "string" if to == "text" else to  # the type's user-facing name, as a synonym

    def needed_columns(self) -> list[str]:
        return [self.column] if self.column is not None else list(self.columns or [])


def _parse(text: pl.Expr, args: ConvertTypesArgs) -> pl.Expr:
    if args.to == "int":
        return parse_int(text, decimal_comma=args.decimal_comma, grouping=True)
    if args.to == "float":
        return parse_float(text, decimal_comma=args.decimal_comma, grouping=True)
    if args.to == "date":
        return parse_date(text, args.format)
    if args.to == "datetime":
        return parse_datetime(text, args.format)
    if args.to == "bool":
        return parse_bool(text)
    return text


def _native(col: pl.Expr, dtype: pl.DataType, to: str) -> pl.Expr:
    """A typed column converted to ``to`` without going through text; null where a value does
    not convert (a fraction to int, 2 to bool)."""
    if to == "int":
        if dtype.is_float():
            whole = col.is_finite() & (col == col.round()) & (col.abs() < 2.0**63)
            return pl.when(whole).then(col.cast(pl.Int64, strict=False))
        return col.cast(pl.Int64, strict=False)
    if to == "float":
        return col.cast(pl.Float64)
    if to == "bool":
        if dtype == pl.Boolean:
            return col
        return pl.when(col == 1).then(True).when(col == 0).then(False)
    if to == "date":
        return col if dtype == pl.Date else col.dt.date()
    return col.cast(pl.Datetime("us"))  # datetime


def _convert(df: pl.DataFrame, column: str, args: ConvertTypesArgs) -> pl.DataFrame:
    """Columns text, value (converted, null where empty or bad) and bad, each computed once."""
    dtype = df.schema[column]
    is_text = dtype == pl.String or dtype == pl.Null
    if not is_text and args.to != "string" and cell_kind(dtype) not in _FROM[args.to]:
        raise column_type_mismatch(
            column,
            cell_kind(dtype),
            f"excel/convert-types cannot make {_WHAT[args.to]} of it (a {cell_kind(dtype)} column "
            f"converts to {_targets_of(cell_kind(dtype))}).",
        )
    work = df.select(text_form(column, dtype).alias("text"), pl.col(column).alias("source"))
    empty = is_empty(pl.col("text"), pl.String()) if is_text else pl.col("source").is_null()
    if args.to == "string":
        value = pl.col("text")
    elif is_text:
        value = _parse(pl.col("text"), args)
    else:
        value = _native(pl.col("source"), dtype, args.to)
    work = work.with_columns(empty.alias("empty"))
    work = work.with_columns(pl.when(pl.col("empty")).then(None).otherwise(value).alias("value"))
    return work.with_columns((~pl.col("empty") & pl.col("value").is_null()).alias("bad"))


def _targets_of(kind: str) -> str:
    return ", ".join(to for to, kinds in _FROM.items() if kind in kinds) + " or string"


def _fail(column: str, text: pl.Series, bad: pl.Series, to: str) -> None:
    n = int(bad.sum())
    row = int(bad.arg_true()[0])
    value = text[row]
    more = f" ({plural(n, 'value')} in this column cannot be converted)" if n > 1 else ""
    raise StepFailed(
        "conversion_failed",
        f"Cannot convert {value!r} in column '{column}', row {row + 1}, to {_WHAT[to]}{more}.",
        details={"column": column, "row": row + 1, "value": value, "failed": n},
    )


@operation(
    "excel/convert-types",
    example={"columns": ["order_date"], "to": "date", "format": "%d/%m/%Y", "on_error": "fail"},
    title="convert types",
    doing=lambda df, args: f"Converting {describe(args.needed_columns())} to {args.to}",
)
def convert_types(df: pl.DataFrame, args: ConvertTypesArgs) -> Outcome:
    """Convert text columns to whole numbers, numbers, dates, datetimes or booleans (decimal
    commas, thousands separators and date formats on request), typed columns to another type
    (integer/float/boolean among themselves, date/datetime among themselves; others fail with
    column_type_mismatch), or any column to text (numbers without '.0'), choosing what happens
    to cells that do not convert."""
    converted = 0
    failures: dict[str, dict[str, Any]] = {}
    new: list[pl.Series] = []
    for column in args.needed_columns():
        work = _convert(df, column, args)
        text, bad = work["text"], work["bad"]
        n_bad = int(bad.sum())
        if n_bad:
            if args.on_error == "fail":
                _fail(column, text, bad, args.to)
            examples = text.filter(bad).unique(maintain_order=True).head(_EXAMPLES).to_list()
            failures[column] = {"count": n_bad, "examples": examples}
        typed = df.schema[column] not in (pl.String, pl.Null)
        if args.on_error == "keep" and typed and n_bad:
            continue  # numbers stay numbers: a typed column that does not convert is kept
        converted += int((~work["empty"]).sum()) - n_bad
        if args.on_error == "keep" and args.to != "string" and not typed:
            canonical = text_form("value", work.schema["value"])
            kept = work.select(pl.when(pl.col("bad")).then(pl.col("text")).otherwise(canonical))
            new.append(kept.to_series().alias(column))
        else:
            new.append(work["value"].alias(column))
    out = df.with_columns(new)
    failed = sum(f["count"] for f in failures.values())
    message = f"Converted {plural(converted, 'value')} to {args.to}"
    if failed:
        fate = "kept as they were" if args.on_error == "keep" else "made empty"
        message += f"; {plural(failed, 'value')} could not be converted ({fate})"
    return Outcome(out, message, {"converted": converted, "failed": failed, "failures": failures})
