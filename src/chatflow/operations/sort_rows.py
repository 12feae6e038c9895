"""excel/sort: a stable sort by several keys, each comparing as numbers, dates or text.

Typed columns sort by their values; only text columns are read as numbers or dates.  The
sorted table keeps every column's type.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, field_validator

from chatflow.operations.common import column_type_mismatch, plural, quoted, repeated
from chatflow.operations.registry import INPUT_COLUMNS
from chatflow.operations.steps import Outcome, TableArgs, operation
from chatflow.operations.values import is_empty, parse_datetime, parse_float, text_form
from chatflow.spreadsheets.cell_types import cell_kind

CompareAs = Literal["auto", "text", "number", "date", "natural"]
_NATURAL_PAD_LIMIT = 64  # digit runs are zero-padded to the longest run, at most this wide
_DETECT_SAMPLE = 1000  # auto: cells tried before parsing a whole column


class SortKey(BaseModel):
    """One sort key."""

    model_config = ConfigDict(extra="forbid")

    column: str = Field(description="Column to sort by.", json_schema_extra=INPUT_COLUMNS)
    descending: bool = Field(default=False, description="Largest / latest / Z first.")
    nulls_last: bool = Field(
        default=True,
        description=(
            "Put empty cells (and with number/date, cells that are not numbers/dates) last, "
            "whatever the direction; false puts them first."
        ),
    )
    compare_as: CompareAs = Field(
        default="auto",
        description=(
            "How cells compare. auto: number, date and datetime columns by their values "
            "(boolean: false before true); a text column as numbers if every non-empty cell "
            "is number text, else as dates if every one is an ISO date, else as text. number: "
            "as numbers (text cells that are not numbers sort with the empty ones); date: as "
            "ISO dates/datetimes; number on a date or boolean column, or date on a number or "
            "boolean column, fails with column_type_mismatch. text: by Unicode code point ('B' "
            "before 'a' unless case_sensitive=false); natural: text with digit runs compared "
            "as numbers ('item2' before 'item10'); text and natural compare a number, date or "
            "boolean column by its cells as they read (so as text 10 comes before 9)."
        ),
    )
    case_sensitive: bool = Field(
        default=True, description="false: text and natural comparisons ignore letter case."
    )


class SortArgs(TableArgs):
    """Arguments of excel/sort."""

    by: list[SortKey] = Field(
        min_length=1,
        description="Sort keys, most important first. The sort is stable: ties keep their order.",
    )

    @field_validator("by")
    @classmethod
    def _distinct(cls, by: list[SortKey]) -> list[SortKey]:
        twice = repeated(k.column for k in by)
        if twice:
            raise ValueError(f"columns sorted by more than once: {quoted(twice)}")
        return by

    def needed_columns(self) -> list[str]:
        return [k.column for k in self.by]


def _all_parse(present: pl.Series, parse: Callable[[pl.Expr], pl.Expr]) -> bool:
    """Whether every cell of ``present`` (the non-empty ones) parses; a sample is tried first,
    so that a text column costs next to nothing."""
    for cells in (present.head(_DETECT_SAMPLE), present):
        if cells.to_frame("v").select(parse(pl.col("v")).null_count()).item():
            return False
    return True


def _natural(text: pl.Series) -> pl.Series:
    """Text with every digit run zero-padded to the same width, so text order is natural."""
    frame = text.to_frame("v")
    runs = frame.select(
        pl.col("v")
        .str.extract_all(r"[0-9]+")
        .list.eval(pl.element().str.len_chars())
        .list.max()
        .max()
    ).item()
    if not runs:
        return text
    width = min(int(runs), _NATURAL_PAD_LIMIT)
    pieces = pl.col("v").str.extract_all(r"[0-9]+|[^0-9]+")
    padded = pieces.list.eval(
        pl.when(pl.element().str.contains(r"^[0-9]"))
        .then(pl.element().str.zfill(width))
        .otherwise(pl.element())
    )
    return frame.select(padded.list.join("")).to_series()


def _typed_kind(dtype: pl.DataType) -> str:
    """How a typed column sorts by itself: number, date (dates and datetimes), boolean."""
    if dtype.is_numeric():
        return "number"
    if dtype == pl.Date or isinstance(dtype, pl.Datetime):
        return "date"
    return "boolean" if dtype == pl.Boolean else "native"


def sort_key(df: pl.DataFrame, key: SortKey) -> tuple[pl.Series, str]:
    """The values to sort by for ``key`` (empty cells null) and how they compare."""
    dtype = df.schema[key.column]
    kind: str = key.compare_as
    if dtype != pl.String and kind in ("auto", "number", "date"):
        typed = _typed_kind(dtype)
        if kind in ("auto", typed):
            return df[key.column], typed
        raise column_type_mismatch(
            key.column,
            cell_kind(dtype),
            f"it cannot be compared as {kind}s (use compare_as 'auto', 'text' or 'natural').",
        )
    cells = text_form(key.column, dtype)
    text = df.select(pl.when(is_empty(cells, pl.String())).then(None).otherwise(cells)).to_series()
    if kind == "auto":
        present = text.drop_nulls()
        for candidate, parse in (("number", parse_float), ("date", parse_datetime)):
            if present.len() and _all_parse(present, parse):
                kind = candidate
                break
        else:
            kind = "text"
    if kind == "number":
        return text.to_frame("v").select(parse_float(pl.col("v"))).to_series(), kind
    if kind == "date":
        return text.to_frame("v").select(parse_datetime(pl.col("v"))).to_series(), kind
    if not key.case_sensitive:
        text = text.str.to_lowercase()
    return (_natural(text) if kind == "natural" else text), kind


@operation(
    "excel/sort",
    example={
        "by": [
            {"column": "country"},
            {"column": "amount", "descending": True, "compare_as": "number"},
        ]
    },
    title="sort rows",
    doing=lambda df, args: f"Sorting by {quoted(args.needed_columns())}",
)
def sort_rows(df: pl.DataFrame, args: SortArgs) -> Outcome:
    """Sort rows by one or more columns, each ascending or descending, comparing numbers, dates,
    text or natural text (auto-detected by default).

    The sort is stable. Number, date and boolean columns sort by their values (text and natural
    compare them as they read); text columns sort as numbers or dates when every cell is one.
    Columns keep their types."""
    keys = [sort_key(df, key) for key in args.by]
    out = df.sort(
        [values for values, _ in keys],
        descending=[k.descending for k in args.by],
        nulls_last=[k.nulls_last for k in args.by],
        maintain_order=True,
    )
    compared = {k.column: kind for k, (_, kind) in zip(args.by, keys, strict=True)}
    return Outcome(out, f"Sorted {plural(df.height, 'row')}", {"compared_as": compared})
