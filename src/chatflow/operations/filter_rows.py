"""excel/filter-rows: keep the rows matching conditions on their cells.

Cells are text, so each comparison says how it reads them (see ``FilterCondition``).
"""

from __future__ import annotations

from typing import Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from chatflow.operations.common import plural
from chatflow.operations.patterns import check_regex, regex_errors
from chatflow.operations.registry import OperationArgs, StepContext, StepOutput, registry
from chatflow.operations.steps import Outcome, SheetArg, TableOutputArg, run_table_step
from chatflow.operations.values import (
    CellValue,
    is_empty,
    iso_value,
    number_value,
    parse_datetime,
    parse_float,
    text_of,
    value_text,
)

FilterOp = Literal[
    "eq",
    "ne",
    "gt",
    "ge",
    "lt",
    "le",
    "contains",
    "starts_with",
    "ends_with",
    "regex",
    "in",
    "not_in",
    "is_empty",
    "not_empty",
]
_ORDERED = ("gt", "ge", "lt", "le")
_LISTS = ("in", "not_in")
_NO_VALUE = ("is_empty", "not_empty")
_NEGATED = {"ne": "eq", "not_in": "in", "not_empty": "is_empty"}


class FilterCondition(BaseModel):
    """One test on one column's cells.

    - eq / ne: a text value compares the cell text exactly (no trimming; "1.0" is not "1"); a
      JSON number compares numerically ("1.0", " 1" and "1" all equal 1; cells that are not numbers
      never equal a number).
    - gt / ge / lt / le: numerically when the value is a number (JSON number or number text such as
      "10"; cells that are not numbers never match), as dates when the value is an ISO date
      ("2024-03-01": cells compared by their date part; "2024-03-01 12:00": as datetimes; cells
      that are not ISO dates never match), otherwise as text (by Unicode code point).
    - contains / starts_with / ends_with: literal text.
    - regex: the cell contains a match of this regular expression (Rust/polars syntax; anchor with
      ^ and $ for a whole-cell match).
    - in / not_in: value is a list; each item compares like eq.
    - is_empty / not_empty: empty means no value, or only spaces; they take no value.

    Empty cells match nothing except ne, not_in and is_empty (the negations match them).
    case_sensitive=false compares lower-cased text (eq, ne, contains, starts_with, ends_with,
    regex, in, not_in, and text comparisons)."""

    model_config = ConfigDict(extra="forbid")

    column: str = Field(description="The column whose cells are tested.")
    op: FilterOp = Field(description="The test; see the condition's description.")
    value: CellValue | list[CellValue] | None = Field(
        default=None,
        description=(
            "What to compare with: one value, a list for in/not_in, nothing for is_empty/not_empty."
        ),
    )
    case_sensitive: bool = Field(default=True, description="Whether letter case matters.")

    @model_validator(mode="after")
    def _value_fits_op(self) -> FilterCondition:
        if self.op in _NO_VALUE:
            if self.value is not None:
                raise ValueError(f"{self.op} takes no value")
        elif self.op in _LISTS:
            if not isinstance(self.value, list) or not self.value:
                raise ValueError(f"{self.op} needs a non-empty list of values")
        elif self.value is None or isinstance(self.value, list):
            raise ValueError(f"{self.op} needs one value (not a list)")
        if self.op in ("contains", "starts_with", "ends_with", "regex") and not isinstance(
            self.value, str
        ):
            raise ValueError(f"{self.op} needs a text value")
        if self.op in ("contains", "starts_with", "ends_with", "regex") and self.value == "":
            raise ValueError(f"{self.op} needs a non-empty value")
        if self.op == "regex":
            assert isinstance(self.value, str)
            check_regex(self.value)
        return self


class FilterRowsArgs(OperationArgs):
    """Arguments of excel/filter-rows."""

    conditions: list[FilterCondition] = Field(
        min_length=1, description="The tests; see match for how they combine."
    )
    match: Literal["all", "any"] = Field(
        default="all",
        description="all: keep rows passing every condition; any: rows passing at least one.",
    )
    sheet: SheetArg = None
    output: TableOutputArg = None

    def columns(self) -> list[str]:
        return list(dict.fromkeys(c.column for c in self.conditions))


def _lower(expr: pl.Expr, condition: FilterCondition) -> pl.Expr:
    return expr if condition.case_sensitive else expr.str.to_lowercase()


def _lower_value(text: str, condition: FilterCondition) -> str:
    if condition.case_sensitive:
        return text
    return str(pl.select(pl.lit(text).str.to_lowercase()).item())


def _equals(cell: pl.Expr, value: CellValue, condition: FilterCondition) -> pl.Expr:
    """eq for one value: numeric for JSON numbers, exact text otherwise."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return parse_float(cell) == float(value)
    return _lower(cell, condition) == _lower_value(value_text(value), condition)


def _ordered(cell: pl.Expr, op: str, value: CellValue, condition: FilterCondition) -> pl.Expr:
    """gt/ge/lt/le: as numbers, ISO dates or text, decided by the value."""
    target: pl.Expr
    if isinstance(value, int | float) and not isinstance(value, bool):
        left, target = parse_float(cell), pl.lit(float(value))
    elif (number := number_value(value_text(value))) is not None:
        left, target = parse_float(cell), pl.lit(number)
    elif (moment := iso_value(value_text(value))) is not None:
        stamp, has_time = moment
        if has_time:
            left, target = parse_datetime(cell), pl.lit(stamp, dtype=pl.Datetime("us"))
        else:
            left, target = parse_datetime(cell).dt.date(), pl.lit(stamp.date(), dtype=pl.Date)
    else:
        left = _lower(cell, condition)
        target = pl.lit(_lower_value(value_text(value), condition))
    compare = {"gt": left > target, "ge": left >= target, "lt": left < target, "le": left <= target}
    return compare[op]


def condition_expr(condition: FilterCondition, dtype: pl.DataType) -> pl.Expr:
    """True where a row passes ``condition`` (never null)."""
    op = _NEGATED.get(condition.op, condition.op)
    cell = text_of(condition.column, dtype)
    value = condition.value
    if op == "is_empty":
        test = is_empty(pl.col(condition.column), dtype)
    elif op == "eq":
        assert value is not None and not isinstance(value, list)
        test = _equals(cell, value, condition)
    elif op == "in":
        assert isinstance(value, list)
        texts = [_lower_value(value_text(v), condition) for v in value if isinstance(v, str | bool)]
        numbers = [
            float(v) for v in value if isinstance(v, int | float) and not isinstance(v, bool)
        ]
        test = _lower(cell, condition).is_in(texts)
        if numbers:
            test = test | parse_float(cell).is_in(numbers)
    elif op in _ORDERED:
        assert value is not None and not isinstance(value, list)
        test = _ordered(cell, op, value, condition)
    else:
        assert isinstance(value, str)
        lowered = _lower(cell, condition)
        needle = _lower_value(value, condition)
        if op == "contains":
            test = lowered.str.contains(needle, literal=True)
        elif op == "starts_with":
            test = lowered.str.starts_with(needle)
        elif op == "ends_with":
            test = lowered.str.ends_with(needle)
        else:  # regex
            flags = "" if condition.case_sensitive else "(?i)"
            test = cell.str.contains(flags + value)
    test = test.fill_null(False)
    return ~test if condition.op in _NEGATED else test


def filter_rows(df: pl.DataFrame, args: FilterRowsArgs) -> Outcome:
    tests = [condition_expr(c, df.schema[c.column]) for c in args.conditions]
    keep = pl.all_horizontal(tests) if args.match == "all" else pl.any_horizontal(tests)
    patterns = [str(c.value) for c in args.conditions if c.op == "regex"]
    with regex_errors(", ".join(patterns)):
        out = df.filter(keep)
    removed = df.height - out.height
    return Outcome(
        out,
        f"Kept {plural(out.height, 'row')} of {df.height}",
        {"removed": removed},
    )


def _describe(args: FilterRowsArgs) -> str:
    joined = f" {'and' if args.match == 'all' else 'or'} ".join(
        f"{c.column} {c.op}" + ("" if c.value is None else f" {c.value!r}") for c in args.conditions
    )
    return f"Keeping rows where {joined}"


@registry.register(
    "excel/filter-rows",
    description=(
        "Keep only the rows whose cells pass conditions (equal, greater than, contains, regex, "
        "in a list, empty...), all of them or any of them. Numbers and ISO dates compare as "
        "such when the value given is one."
    ),
    args=FilterRowsArgs,
    example={
        "conditions": [
            {"column": "country", "op": "in", "value": ["DE", "AT", "CH"]},
            {"column": "amount", "op": "ge", "value": 100},
        ],
        "match": "all",
    },
    input_columns=lambda args: args.columns(),
)
def run_filter_rows(ctx: StepContext, args: FilterRowsArgs) -> StepOutput:
    return run_table_step(
        ctx,
        title="filter rows",
        doing=_describe(args),
        sheet=args.sheet,
        output=args.output,
        needed=args.columns(),
        transform=lambda df: filter_rows(df, args),
    )
