"""excel/convert-types: turn text columns into numbers, dates, datetimes or booleans.

Cells are read as text; a converted column is written as real numbers/dates/booleans and later
steps see the typed values.  Empty cells (null or only spaces) become null and are never errors.
"""

from __future__ import annotations

from typing import Any, Literal

import polars as pl
from pydantic import Field, field_validator, model_validator

from chatflow.operations.common import describe, no_repeats_or_none, plural
from chatflow.operations.patterns import check_strftime
from chatflow.operations.registry import (
    OperationArgs,
    StepContext,
    StepFailed,
    StepOutput,
    registry,
)
from chatflow.operations.steps import Outcome, SheetArg, TableOutputArg, run_table_step
from chatflow.operations.values import (
    is_empty,
    parse_bool,
    parse_date,
    parse_datetime,
    parse_float,
    parse_int,
    text_of,
)

Target = Literal["string", "int", "float", "date", "datetime", "bool"]
_EXAMPLES = 5
_WHAT = {
    "int": "a whole number",
    "float": "a number",
    "date": "a date",
    "datetime": "a date and time",
    "bool": "true/false, yes/no or 1/0",
}


class ConvertTypesArgs(OperationArgs):
    """Arguments of excel/convert-types; give column or columns."""

    column: str | None = Field(default=None, description="The column to convert.")
    columns: list[str] | None = Field(
        default=None, min_length=1, description="Several columns to convert the same way."
    )
    to: Target = Field(
        description=(
            "Target type. int: whole numbers ('12', '+12', '12.0', '1,234'); float: numbers "
            "('3.5', '-.5', '1e3', '1,234.5'); thousands separators only in their proper "
            "place. date / datetime: ISO text ('2024-02-29', '2024-02-29 13:45:00', as real "
            "Excel dates are read), or text in format; a datetime converted to date loses its "
            "time. bool: true/false, yes/no, 1/0 in any case. string: typed values back to "
            "text (dates ISO)."
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
            "For non-empty cells that do not convert. null: they become empty; keep: the "
            "column stays text, converted cells rewritten in canonical form ('1234', '3.5', "
            "'2024-02-29', 'true') and the others unchanged; fail: the step fails with error "
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
    sheet: SheetArg = None
    output: TableOutputArg = None

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

    def targets(self) -> list[str]:
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


def _canonical(value: pl.Expr, to: str) -> pl.Expr:
    """A converted value as the text the reader would produce for it."""
    if to == "float":
        whole = (value == value.round()) & (value.abs() < 2**53)
        as_int = value.cast(pl.Int64, strict=False).cast(pl.String)
        return pl.when(whole).then(as_int).otherwise(value.cast(pl.String))
    if to == "date":
        return value.dt.to_string("%Y-%m-%d")
    if to == "datetime":
        return value.dt.to_string("%Y-%m-%d %H:%M:%S%.f")
    return value.cast(pl.String)


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


def _convert(df: pl.DataFrame, column: str, args: ConvertTypesArgs) -> pl.DataFrame:
    """Columns text, value (converted, null where empty or bad) and bad, each computed once."""
    dtype = df.schema[column]
    text = (
        _canonical(pl.col(column), "float")
        if args.to == "string" and dtype.is_float()
        else (text_of(column, dtype))
    )
    work = df.select(text.alias("text"))
    work = work.with_columns(is_empty(pl.col("text"), pl.String()).alias("empty"))
    parsed = pl.when(pl.col("empty")).then(None).otherwise(_parse(pl.col("text"), args))
    work = work.with_columns(parsed.alias("value"))
    return work.with_columns((~pl.col("empty") & pl.col("value").is_null()).alias("bad"))


def convert_types(df: pl.DataFrame, args: ConvertTypesArgs) -> Outcome:
    converted = 0
    failures: dict[str, dict[str, Any]] = {}
    new: list[pl.Series] = []
    for column in args.targets():
        work = _convert(df, column, args)
        text, bad = work["text"], work["bad"]
        n_bad = int(bad.sum())
        converted += int((~work["empty"]).sum()) - n_bad
        if n_bad:
            if args.on_error == "fail":
                _fail(column, text, bad, args.to)
            examples = text.filter(bad).unique(maintain_order=True).head(_EXAMPLES).to_list()
            failures[column] = {"count": n_bad, "examples": examples}
        if args.on_error == "keep" and args.to != "string":
            canonical = _canonical(pl.col("value"), args.to)
            kept = work.select(pl.when(pl.col("bad")).then(pl.col("text")).otherwise(canonical))
            new.append(kept.to_series().alias(column))
        else:
            new.append(work["value"].alias(column))
    out = df.with_columns(new)
    failed = sum(f["count"] for f in failures.values())
    message = f"Converted {plural(converted, 'value')} to {args.to}"
    if failed:
        fate = "kept as text" if args.on_error == "keep" else "made empty"
        message += f"; {plural(failed, 'value')} could not be converted ({fate})"
    return Outcome(out, message, {"converted": converted, "failed": failed, "failures": failures})


@registry.register(
    "excel/convert-types",
    description=(
        "Convert text columns to whole numbers, numbers, dates, datetimes or booleans (or "
        "typed columns back to text), choosing what happens to cells that do not convert."
    ),
    args=ConvertTypesArgs,
    example={"columns": ["order_date"], "to": "date", "format": "%d/%m/%Y", "on_error": "fail"},
    input_columns=lambda args: args.targets(),
)
def run_convert_types(ctx: StepContext, args: ConvertTypesArgs) -> StepOutput:
    return run_table_step(
        ctx,
        title="convert types",
        doing=f"Converting {describe(args.targets())} to {args.to}",
        sheet=args.sheet,
        output=args.output,
        needed=args.targets(),
        transform=lambda df: convert_types(df, args),
    )
