"""excel/filter-rows: keep the rows matching conditions on their cells.

Columns are typed; each comparison works on the column's type: numbers as numbers, dates as
dates, text as text (see ``FilterCondition``).  The kept rows keep their types.
"""

from __future__ import annotations

from typing import Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from chatflow.operations.common import column_type_mismatch, plural
from chatflow.operations.patterns import check_regex, regex_errors
from chatflow.operations.registry import INPUT_COLUMNS
from chatflow.operations.steps import Outcome, TableArgs, operation
from chatflow.operations.values import (
    CellValue,
    is_empty,
    iso_value,
    number_value,
    parse_datetime,
    parse_float,
    shown,
    text_form,
    value_text,
)
from chatflow.spreadsheets.cell_types import cell_kind

MAX_CONDITIONS = 200  # like validate's rules: each condition is one more pass over the table

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
    """One test on one column's cells; how values compare depends on the column's type.

    Number columns (integer, float) compare as numbers with a JSON number or number text
    ("10", "2.5"): eq 1 matches 1 and 1.0. gt / ge / lt / le with anything else fail with
    column_type_mismatch.
    Date and datetime columns compare with ISO text: "2024-03-01" with each cell's date part,
    "2024-03-01 12:00" with the cell as a datetime. gt / ge / lt / le with anything else fail with
    column_type_mismatch.
    Boolean columns: eq / ne / in / not_in with true / false (or the text "true" / "false");
    gt / ge / lt / le fail with column_type_mismatch.
    Text columns compare text, exactly (no trimming; "1.0" is not "1"), except that a JSON
    number in eq / ne / in / not_in, and a number (JSON or text such as "10") in gt / ge / lt /
    le, compare the cells that are number text numerically (others never match), and an ISO
    date in gt / ge / lt / le compares the cells that are ISO dates as dates (others never
    match); any other gt / ge / lt / le value compares text by Unicode code point.

    - contains / starts_with / ends_with: literal text; regex: the cell contains a match of
      this regular expression (Rust/polars syntax; anchor with ^ and $ for a whole cell). On
      number, date and boolean columns these test the cell as it reads (120, 3.5, 2024-03-01,
      2024-03-01 12:00:00, true); the column keeps its type.
    - in / not_in: value is a list; each item compares like eq.
    - is_empty / not_empty: empty means no value, or (text) only spaces; they take no value.

    Empty cells match nothing except ne, not_in and is_empty (the negations match them).
    case_sensitive=false compares lower-cased text (eq, ne, contains, starts_with, ends_with,
    regex, in, not_in, and text comparisons)."""

    model_config = ConfigDict(extra="forbid")

    column: str = Field(
        description="The column whose cells are tested.", json_schema_extra=INPUT_COLUMNS
    )
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


class FilterRowsArgs(TableArgs):
    """Arguments of excel/filter-rows."""

    conditions: list[FilterCondition] = Field(
        min_length=1,
        max_length=MAX_CONDITIONS,
        description="The tests; see match for how they combine.",
    )
    match: Literal["all", "any"] = Field(
        default="all",
        description="all: keep rows passing every condition; any: rows passing at least one.",
    )

    def needed_columns(self) -> list[str]:
        return list(dict.fromkeys(c.column for c in self.conditions))


def _lower(expr: pl.Expr, condition: FilterCondition) -> pl.Expr:
    return expr if condition.case_sensitive else expr.str.to_lowercase()


def _lower_value(text: str, condition: FilterCondition) -> str:
    if condition.case_sensitive:
        return text
    return str(pl.select(pl.lit(text).str.to_lowercase()).item())


def _kind(dtype: pl.DataType) -> str:
    """How a column compares: number, date (Date and Datetime), boolean, text (anything else
    compares by its text form)."""
    if dtype.is_numeric():
        return "number"
    if dtype == pl.Date or isinstance(dtype, pl.Datetime):
        return "date"
    return "boolean" if dtype == pl.Boolean else "text"


def _json_number(value: CellValue) -> int | float | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _number(value: CellValue) -> int | float | None:
    """A JSON number, or text that is a number ("10", " 2.5"); else None."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and (number := number_value(value)) is not None:
        return int(number) if number.is_integer() and abs(number) < 2**53 else number
    return None


def _moment(cell: pl.Expr, dtype: pl.DataType, value: CellValue) -> tuple[pl.Expr, pl.Expr] | None:
    """(cell, value) as dates or datetimes when ``value`` is ISO text: a date compares with the
    cell's date part, a datetime with the cell as a datetime (a date is its midnight)."""
    moment = iso_value(value) if isinstance(value, str) else None
    if moment is None:
        return None
    stamp, has_time = moment
    if has_time:
        left = cell.cast(pl.Datetime("us")) if dtype != pl.String else parse_datetime(cell)
        return left, pl.lit(stamp, dtype=pl.Datetime("us"))
    if dtype == pl.Date:
        left = cell
    else:
        left = (parse_datetime(cell) if dtype == pl.String else cell).dt.date()
    return left, pl.lit(stamp.date(), dtype=pl.Date)


def _equals_any(
    column: str, dtype: pl.DataType, values: list[CellValue], condition: FilterCondition
) -> pl.Expr:
    """eq / in: true where the cell equals one of ``values`` (see ``FilterCondition``)."""
    kind, col = _kind(dtype), pl.col(column)
    text = _lower(text_form(column, dtype), condition)
    tests: list[pl.Expr] = []
    texts: list[str] = []
    numbers: list[int | float] = []
    for value in values:
        # numeric columns take number text too; text columns compare JSON numbers numerically
        number = _number(value) if kind == "number" else _json_number(value)
        if kind in ("number", "text") and number is not None:
            numbers.append(number)
        elif kind == "date" and (pair := _moment(col, dtype, value)) is not None:
            tests.append(pair[0] == pair[1])
        elif kind == "boolean" and isinstance(value, bool):
            tests.append(col == value)
        else:
            texts.append(_lower_value(value_text(value), condition))
    if numbers:
        cells = parse_float(col) if kind == "text" else col
        if kind == "text" or any(isinstance(n, float) for n in numbers) or dtype.is_float():
            cells, numbers = cells.cast(pl.Float64), [float(n) for n in numbers]
        tests.append(cells.is_in(numbers))
    if texts:
        tests.append(text.is_in(texts) if len(texts) > 1 else text == texts[0])
    return pl.any_horizontal(tests)


def _ordered(
    column: str, dtype: pl.DataType, op: str, value: CellValue, condition: FilterCondition
) -> pl.Expr:
    """gt/ge/lt/le: numbers, dates or text, decided by the column's type (and on text columns
    by the value)."""
    kind, col = _kind(dtype), pl.col(column)
    pair: tuple[pl.Expr, pl.Expr] | None
    if kind == "number":
        number = _number(value)
        if number is None:
            raise column_type_mismatch(
                column,
                cell_kind(dtype),
                f"'{op}' compares it with numbers, and {shown(value)} is not one.",
            )
        pair = col, pl.lit(number)
    elif kind == "date":
        pair = _moment(col, dtype, value)
        if pair is None:
            raise column_type_mismatch(
                column,
                cell_kind(dtype),
                f"'{op}' compares it with ISO dates (2024-03-01 or 2024-03-01 12:00), and "
                f"{shown(value)} is not one.",
            )
    elif kind == "boolean":
        raise column_type_mismatch(
            column, cell_kind(dtype), f"'{op}' needs numbers, dates or text; use eq or ne."
        )
    else:
        text = text_form(column, dtype)
        if (number := _number(value)) is not None:
            pair = parse_float(text), pl.lit(float(number))
        else:
            pair = _moment(text, pl.String(), value)
            if pair is None:
                lowered = _lower_value(value_text(value), condition)
                pair = _lower(text, condition), pl.lit(lowered)
    left, target = pair
    compare = {"gt": left > target, "ge": left >= target, "lt": left < target, "le": left <= target}
    return compare[op]


def condition_expr(condition: FilterCondition, dtype: pl.DataType) -> pl.Expr:
    """True where a row passes ``condition`` (never null)."""
    op = _NEGATED.get(condition.op, condition.op)
    column = condition.column
    value = condition.value
    if op == "is_empty":
        test = is_empty(pl.col(column), dtype)
    elif op in ("eq", "in"):
        assert value is not None
        test = _equals_any(column, dtype, value if isinstance(value, list) else [value], condition)
    elif op in _ORDERED:
        assert value is not None and not isinstance(value, list)
        test = _ordered(column, dtype, op, value, condition)
    else:
        assert isinstance(value, str)
        cell = text_form(column, dtype)
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


@operation(
    "excel/filter-rows",
    example={
        "conditions": [
            {"column": "country", "op": "in", "value": ["DE", "AT", "CH"]},
            {"column": "amount", "op": "ge", "value": 100},
        ],
        "match": "all",
    },
    title="filter rows",
    doing=lambda df, args: _describe(args),
)
def filter_rows(df: pl.DataFrame, args: FilterRowsArgs) -> Outcome:
    """Keep only the rows whose cells pass conditions (equal, greater than, contains, regex, in a
    list, empty...), all of them or any of them.

    Number columns compare as numbers (with a JSON number or number text), date columns as dates
    (with an ISO date), boolean columns with true/false; greater/less than with a value of
    another kind fails with column_type_mismatch (422). Text columns compare text, but
    numerically with a number value and as dates with an ISO date value (cells that are not
    numbers/dates never match). contains/starts_with/ends_with/regex test a number, date or
    boolean cell as it reads (3.5, 2024-03-01, true). Columns keep their types."""
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
        f"{c.column} {c.op}" + ("" if c.value is None else f" {shown(c.value)}")
        for c in args.conditions
    )
    return f"Keeping rows where {joined}"
