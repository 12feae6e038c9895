"""Column operations: select, rename, reorder and add columns.

excel/split-column and excel/merge-columns live in ``split_merge``.
"""

from __future__ import annotations

import re
from typing import Literal

import polars as pl
from pydantic import Field, field_validator, model_validator

from chatflow.failures import StepFailed
from chatflow.operations.common import (
    column_not_found,
    describe,
    new_name,
    no_repeats,
    plural,
    quoted,
    reject_existing,
)
from chatflow.operations.registry import INPUT_COLUMNS
from chatflow.operations.steps import Outcome, TableArgs, operation
from chatflow.operations.values import CellValue, blank_to_null, text_form
from chatflow.spreadsheets.cell_types import cell_kind

# ---------------------------------------------------------------- excel/select-columns


class SelectColumnsArgs(TableArgs):
    """Arguments of excel/select-columns."""

    columns: list[str] = Field(
        min_length=1,
        description="Columns to keep (in this order) or to drop, by exact name.",
        json_schema_extra=INPUT_COLUMNS,
    )
    mode: Literal["keep", "drop"] = Field(
        default="keep",
        description=(
            "keep: the result has exactly these columns, in the order listed; drop: every "
            "column except these, in their original order."
        ),
    )

    _columns = field_validator("columns")(no_repeats)

    def needed_columns(self) -> list[str]:
        return list(self.columns)


def _keeping(df: pl.DataFrame, args: SelectColumnsArgs) -> str:
    return f"{'Keeping' if args.mode == 'keep' else 'Dropping'} {describe(args.columns)}"


@operation(
    "excel/select-columns",
    example={"columns": ["customer_id", "email", "postal_code"], "mode": "keep"},
    title="select columns",
    doing=_keeping,
)
def select_columns(df: pl.DataFrame, args: SelectColumnsArgs) -> Outcome:
    """Keep only the listed columns (in the listed order), or drop the listed columns and keep the
    rest in their original order.

    Values and column types (numbers, dates, booleans, text) are kept as they are."""
    if args.mode == "keep":
        out = df.select(args.columns)
    else:
        out = df.drop(args.columns)
        if out.width == 0:
            raise StepFailed(
                "no_columns_left", "Dropping these columns would leave no column at all."
            )
    return Outcome(
        out,
        f"Kept {plural(out.width, 'column')} of {df.width}",
        {"columns_in": df.width, "columns_out": out.width},
    )


# ---------------------------------------------------------------- excel/rename-columns


class RenameColumnsArgs(TableArgs):
    """Arguments of excel/rename-columns."""

    mapping: dict[str, str] = Field(
        min_length=1,
        description=(
            "Old name -> new name. Renames happen at once, so names can be swapped "
            '({"a": "b", "b": "a"}); a new name may not be taken by a column that keeps its '
            "name (error column_exists), nor be given twice."
        ),
    )

    @field_validator("mapping")
    @classmethod
    def _sane(cls, mapping: dict[str, str]) -> dict[str, str]:
        for new in mapping.values():
            new_name(new)
        twice = sorted({n for n in mapping.values() if list(mapping.values()).count(n) > 1})
        if twice:
            raise ValueError(f"several columns would be named {quoted(twice)}")
        return mapping

    def needed_columns(self) -> list[str]:
        return list(self.mapping)


@operation(
    "excel/rename-columns",
    example={"mapping": {"Cust. No": "customer_id", "E-mail": "email"}},
    title="rename columns",
    doing=lambda df, args: f"Renaming {describe(list(args.mapping))}",
)
def rename_columns(df: pl.DataFrame, args: RenameColumnsArgs) -> Outcome:
    """Rename columns, keeping their position, values and types (numbers, dates, booleans, text)."""
    staying = [c for c in df.columns if c not in args.mapping]
    reject_existing(args.mapping.values(), staying, what="the renamed column")
    changed = {old: new for old, new in args.mapping.items() if old != new}
    out = df.rename(changed)
    return Outcome(
        out,
        f"Renamed {plural(len(changed), 'column')}",
        {"renamed": len(changed)},
    )


# ---------------------------------------------------------------- excel/reorder-columns


class ReorderColumnsArgs(TableArgs):
    """Arguments of excel/reorder-columns."""

    order: list[str] = Field(
        min_length=1,
        description="Columns to put first, in this order.",
        json_schema_extra=INPUT_COLUMNS,
    )
    others: Literal["end", "drop"] = Field(
        default="end",
        description=(
            "end: the columns not listed follow, in their original order; drop: they are removed."
        ),
    )

    _order = field_validator("order")(no_repeats)

    def needed_columns(self) -> list[str]:
        return list(self.order)


@operation(
    "excel/reorder-columns",
    example={"order": ["last_name", "first_name", "email"], "others": "end"},
    title="reorder columns",
    doing=lambda df, args: f"Moving {describe(args.order)} to the front",
)
def reorder_columns(df: pl.DataFrame, args: ReorderColumnsArgs) -> Outcome:
    """Move the listed columns to the front in the given order; the others follow in their original
    order, or are dropped.

    Values and column types are kept as they are."""
    rest = [c for c in df.columns if c not in set(args.order)]
    columns = args.order + (rest if args.others == "end" else [])
    out = df.select(columns)
    dropped = len(rest) if args.others == "drop" else 0
    message = f"Put {describe(args.order)} first"
    if dropped:
        message += f" and dropped {plural(dropped, 'other column')}"
    return Outcome(out, message, {"columns": columns, "dropped": dropped})


# ---------------------------------------------------------------- excel/add-column

_INT64 = -(2**63)
_PIECE = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]|[^{}]+")


def parse_template(template: str) -> list[tuple[str, bool]]:
    """``template`` as (text, is_column) pieces; {{ and }} are literal braces."""
    pieces: list[tuple[str, bool]] = []
    for found in _PIECE.finditer(template):
        token = found.group(0)
        if token in ("{{", "}}"):
            pieces.append((token[0], False))
        elif token in ("{", "}"):
            raise ValueError(
                f"unmatched '{token}' in template; write '{token * 2}' for a literal brace"
            )
        elif found.group(1) is not None:
            if not found.group(1):
                raise ValueError("empty placeholder {} in template; name a column: {column}")
            pieces.append((found.group(1), True))
        else:
            pieces.append((token, False))
    return pieces


class AddColumnArgs(TableArgs):
    """Arguments of excel/add-column; give exactly one of value, template, row_number."""

    name: str = Field(description="Name of the new column; it must not exist yet.")
    value: CellValue | None = Field(
        default=None,
        description=(
            "The same value in every row, typed as given: a JSON whole number gives an integer "
            "column, another number a float column, true/false a boolean column, a string a "
            'text column ("7" stays text; use 7 for the number).'
        ),
    )
    template: str | None = Field(
        default=None,
        description=(
            "Text with {column} placeholders filled from each row, e.g. '{first} {last}'; the "
            "new column is text. Numbers fill in as they read ('120', '3.5', no '.0'), "
            "booleans as true/false, dates as 2024-01-31, datetimes as 2024-01-31 13:45:00. An "
            "empty cell fills in as empty text (nothing is trimmed) and a result that is "
            "entirely empty is an empty cell; write {{ and }} for literal braces."
        ),
    )
    row_number: bool = Field(
        default=False,
        description=(
            "Number the rows start, start+1, ... in their current order (a column of whole "
            "numbers, written to xlsx as numbers)."
        ),
    )
    start: int = Field(
        default=1,
        # 15 digits, as many as a spreadsheet number holds exactly; start + rows stays in 64 bits.
        ge=-(10**15),
        le=10**15,
        description="First row number (only with row_number), at most 15 digits.",
    )
    position: Literal["end", "start"] = Field(
        default="end", description="Where the new column goes: after the last or first column."
    )

    _name = field_validator("name")(new_name)

    @field_validator("value")
    @classmethod
    def _value(cls, value: CellValue | None) -> CellValue | None:
        if isinstance(value, int) and not isinstance(value, bool) and not _INT64 <= value < -_INT64:
            raise ValueError("value is too large for a whole-number column (64 bits)")
        return value

    @field_validator("template")
    @classmethod
    def _template(cls, template: str | None) -> str | None:
        if template is not None:
            if not template:
                raise ValueError("template must not be empty")
            parse_template(template)
        return template

    @model_validator(mode="after")
    def _exactly_one(self) -> AddColumnArgs:
        given = [
            key
            for key, present in (
                ("value", self.value is not None),
                ("template", self.template is not None),
                ("row_number", self.row_number),
            )
            if present
        ]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of value, template or row_number=true"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if self.start != 1 and not self.row_number:
            raise ValueError("start only applies with row_number=true")
        return self

    def needed_columns(self) -> list[str]:
        """The template's placeholders."""
        if self.template is None:
            return []
        return list(dict.fromkeys(t for t, is_column in parse_template(self.template) if is_column))


def _adding(df: pl.DataFrame, args: AddColumnArgs) -> str:
    how = "row numbers" if args.row_number else "a template" if args.template else "a value"
    return f"Adding column '{args.name}' from {how}"


_VALUE_TYPES: dict[type, pl.DataType] = {
    bool: pl.Boolean(),
    int: pl.Int64(),
    float: pl.Float64(),
    str: pl.String(),
}


@operation(
    "excel/add-column",
    example={"name": "full_name", "template": "{first_name} {last_name}"},
    title="add a column",
    doing=_adding,
)
def add_column(df: pl.DataFrame, args: AddColumnArgs) -> Outcome:
    """Add a column holding a fixed value, text built from other columns with a template ('{first}
    {last}'), or row numbers.

    A value keeps its JSON type (7: integer column, 2.5: float, true: boolean, "7": text); a
    template always makes a text column, numbers and dates filling in as they read ('120',
    '3.5', '2024-01-31'); row numbers are integers. The result names the new column's type."""
    reject_existing([args.name], df.columns, what="the new column")
    if args.value is not None:
        expr = pl.lit(args.value, dtype=_VALUE_TYPES[type(args.value)])
    elif args.template is not None:
        missing = [c for c in args.needed_columns() if c not in df.columns]
        if missing:
            raise column_not_found(missing, df.columns)
        parts = [
            text_form(text, df.schema[text]).fill_null("") if is_column else pl.lit(text)
            for text, is_column in parse_template(args.template)
        ]
        expr = pl.concat_str(parts) if parts else pl.lit("", dtype=pl.String)
        expr = blank_to_null(expr)
    else:
        expr = pl.int_range(args.start, args.start + df.height, dtype=pl.Int64)
    new = expr.alias(args.name)
    out = df.select(new, pl.all()) if args.position == "start" else df.with_columns(new)
    kind = cell_kind(out.schema[args.name])
    return Outcome(out, f"Added {kind} column '{args.name}'", {"column": args.name, "type": kind})
