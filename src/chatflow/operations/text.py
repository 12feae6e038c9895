"""Text operations: find and replace, clean text, normalize codes.

They work on the text of cells.  Without ``columns`` they touch every text column.  Columns
are typed (numbers, dates, booleans, text), and numbers stay numbers: find-replace and
clean-text refuse a named column that is not text (``column_type_mismatch``, a 422 naming the
column and its type; excel/convert-types with to=string makes text of it on request), while
normalize-codes works on the text form of a number column (zip codes stored as numbers) and
says in its result that the column is now text.  A cell whose text becomes empty is an empty
cell (null), as the reader reads empty cells.
excel/convert-types lives in ``convert_types``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

import polars as pl
from pydantic import Field, field_validator, model_validator

from chatflow.operations.common import (
    column_type_mismatch,
    describe_or,
    no_repeats_or_none,
    plural,
)
from chatflow.operations.patterns import check_regex, regex_errors, regex_escape
from chatflow.operations.registry import INPUT_COLUMNS
from chatflow.operations.steps import Outcome, TableArgs, operation
from chatflow.operations.values import (
    as_text_note,
    blank_to_null,
    non_text_kinds,
    shown,
    text_form,
)
from chatflow.spreadsheets.cell_types import cell_kind

ColumnsArg = Annotated[
    list[str] | None,
    Field(
        min_length=1,
        description="Columns to work on (default: every text column).",
        json_schema_extra=INPUT_COLUMNS,
    ),
]


class TextColumnsArgs(TableArgs):
    """Arguments of a step on some text columns, by default every text column."""

    columns: ColumnsArg = None

    _columns = field_validator("columns")(no_repeats_or_none)

    def needed_columns(self) -> list[str]:
        return list(self.columns or [])


def text_columns(df: pl.DataFrame, named: list[str] | None, operation: str) -> list[str]:
    """The columns a text operation works on: those named, else every text column.

    A named column that is not text is refused: changing the text of a number would make the
    whole column text, so the user converts it (excel/convert-types, to=string) on purpose.
    """
    if named is None:
        return [name for name, dtype in df.schema.items() if dtype == pl.String]
    for name in named:
        dtype = df.schema[name]
        if dtype != pl.String and dtype != pl.Null:
            raise column_type_mismatch(
                name,
                cell_kind(dtype),
                f"{operation} works on text columns only. To change its values as text, "
                "convert it first with excel/convert-types (to: string).",
            )
    return list(named)


def _via(series: pl.Series, fn: Callable[[pl.Expr], pl.Expr]) -> pl.Series:
    """``fn`` applied to ``series`` as an expression (materialized, so never recomputed)."""
    return series.to_frame("v").select(fn(pl.col("v"))).to_series().alias(series.name)


def _empty_to_null(series: pl.Series) -> pl.Series:
    return _via(series, blank_to_null)


def _changed(
    df: pl.DataFrame, columns: list[str], change: Callable[[pl.Series], pl.Series]
) -> Outcome:
    """Replace the text of ``columns`` by ``change`` of it; count changed cells per column.

    A column that is not text is changed in its text form ("120", "3.5") and becomes text; the
    result lists such columns under ``as_text``.
    """
    new: list[pl.Series] = []
    by_column: dict[str, int] = {}
    for c in columns:
        before = df.select(text_form(c, df.schema[c])).to_series()
        after = change(before).alias(c)
        changed = int(after.ne_missing(before).sum())
        if changed:
            by_column[c] = changed
        new.append(after)
    out = df.with_columns(new) if new else df
    total = sum(by_column.values())
    as_text = non_text_kinds(df.schema, columns)
    return Outcome(
        out,
        f"Changed {plural(total, 'cell')}{as_text_note(as_text)}",
        {
            "cells_changed": total,
            "by_column": by_column,
            **({"as_text": as_text} if as_text else {}),
        },
    )


# ---------------------------------------------------------------- excel/find-replace


class FindReplaceArgs(TextColumnsArgs):
    """Arguments of excel/find-replace."""

    find: str = Field(
        min_length=1,
        description=("Text to find; literal unless regex=true (so '.', '*', '(' mean themselves)."),
    )
    replace: str = Field(
        description=(
            "Replacement ('' deletes). With regex=true, $1 or ${name} insert a group and $$ is a "
            "literal $; otherwise it is literal."
        )
    )
    regex: bool = Field(
        default=False, description="Treat find as a regular expression (Rust/polars syntax)."
    )
    whole_cell: bool = Field(
        default=False,
        description="Only replace cells whose entire text matches find (else every occurrence).",
    )
    case_sensitive: bool = Field(default=True, description="Whether letter case must match.")

    @model_validator(mode="after")
    def _pattern(self) -> FindReplaceArgs:
        if self.regex:
            check_regex(f"^(?:{self.find})$" if self.whole_cell else self.find)
        return self


def find_replace_text(text: pl.Series, args: FindReplaceArgs) -> pl.Series:
    """``text`` with the replacement applied; a cell left empty is null."""
    literal = not args.regex and args.case_sensitive  # the fast path: no regex at all
    body = args.find if args.regex else regex_escape(args.find)
    flags = "" if args.case_sensitive else "(?i)"
    pattern = f"{flags}^(?:{body})$" if args.whole_cell else flags + body
    if not text.str.contains(args.find if literal else pattern, literal=literal).any():
        return text  # nothing to replace: skip the work (and keep empty cells as they are)
    if args.whole_cell and not args.regex:
        matches = text.str.contains(pattern)
        replaced = _via(text, lambda t: pl.when(matches).then(pl.lit(args.replace)).otherwise(t))
    elif args.whole_cell:  # a regex matching the whole cell; $1 in replace works
        replaced = text.str.replace(pattern, args.replace)
    elif args.regex:
        replaced = text.str.replace_all(pattern, args.replace)
    elif literal:
        replaced = text.str.replace_all(args.find, args.replace, literal=True)
    else:  # literal text, ignoring case: an escaped regex, with $ in replace escaped too
        replaced = text.str.replace_all(pattern, args.replace.replace("$", "$$"))
    return _empty_to_null(replaced)


def _replacing(df: pl.DataFrame, args: FindReplaceArgs) -> str:
    where = describe_or(args.columns, "all text columns")
    return f"Replacing {shown(args.find)} with {shown(args.replace)} in {where}"


@operation(
    "excel/find-replace",
    example={"columns": ["country"], "find": "Deutschland", "replace": "Germany"},
    title="find and replace",
    doing=_replacing,
)
def find_replace(df: pl.DataFrame, args: FindReplaceArgs) -> Outcome:
    """Find text in cells and replace it: literal text by default, or a regular expression; every
    occurrence or whole cells only; optionally ignoring case.

    Works on text columns only (by default every text column): naming a number, date or boolean
    column fails with column_type_mismatch (convert it with excel/convert-types to string
    first); the replaced values are text."""
    with regex_errors(args.find):
        columns = text_columns(df, args.columns, "excel/find-replace")
        return _changed(df, columns, lambda text: find_replace_text(text, args))


# ---------------------------------------------------------------- excel/clean-text

# Control characters except tab and line breaks, zero-width characters, BOM and soft hyphen.
_NON_PRINTABLE = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u00ad\u200b-\u200d\u2060\ufeff]"
# Runs of whitespace other than line breaks (tabs, no-break spaces...): a run of two or more, or
# a single one that is not a plain space (single spaces need no change, and are most matches).
_SPACES = r"[^\S\r\n]{2,}|[^\S \r\n]"


class CleanTextArgs(TextColumnsArgs):
    """Arguments of excel/clean-text; the steps run in the order of the fields below."""

    remove_non_printable: bool = Field(
        default=True,
        description=(
            "Remove control characters (except tab and line breaks), zero-width characters, "
            "byte order marks and soft hyphens."
        ),
    )
    collapse_spaces: bool = Field(
        default=True,
        description=(
            "Turn each run of spaces, tabs and no-break spaces into one plain space (line "
            "breaks are kept)."
        ),
    )
    trim: bool = Field(default=True, description="Remove whitespace at both ends of each cell.")
    case: Literal["upper", "lower", "title"] | None = Field(
        default=None,
        description="Change letter case: UPPER, lower, Title Case (each word); null keeps it.",
    )

    @model_validator(mode="after")
    def _something(self) -> CleanTextArgs:
        if not (self.remove_non_printable or self.collapse_spaces or self.trim or self.case):
            raise ValueError("nothing to do: every cleaning step is switched off")
        return self


def clean_text_series(text: pl.Series, args: CleanTextArgs) -> pl.Series:
    """The steps in order; a replacement is skipped when nothing in the column needs it."""
    if args.remove_non_printable and text.str.contains(_NON_PRINTABLE).any():
        text = text.str.replace_all(_NON_PRINTABLE, "")
    if args.collapse_spaces and text.str.contains(_SPACES).any():
        text = text.str.replace_all(_SPACES, " ")
    if args.trim:
        text = text.str.strip_chars()
    if args.case == "upper":
        text = text.str.to_uppercase()
    elif args.case == "lower":
        text = text.str.to_lowercase()
    elif args.case == "title":
        text = text.str.to_titlecase()
    return _empty_to_null(text)


@operation(
    "excel/clean-text",
    example={"columns": ["name", "city"], "case": "title"},
    title="clean text",
    doing=lambda df, args: f"Cleaning text in {describe_or(args.columns, 'all text columns')}",
)
def clean_text(df: pl.DataFrame, args: CleanTextArgs) -> Outcome:
    """Tidy text cells: remove invisible characters, collapse repeated spaces, trim, and optionally
    change letter case.

    Works on text columns only (by default every text column); naming a number, date or boolean
    column fails with column_type_mismatch."""
    columns = text_columns(df, args.columns, "excel/clean-text")
    return _changed(df, columns, lambda text: clean_text_series(text, args))


# ---------------------------------------------------------------- excel/normalize-codes


class NormalizeCodesArgs(TableArgs):
    """Arguments of excel/normalize-codes."""

    column: str = Field(
        description=(
            "The column holding codes (postal codes, ids...); surrounding spaces are always "
            "removed."
        ),
        json_schema_extra=INPUT_COLUMNS,
    )
    pad_to: int | None = Field(
        default=None,
        ge=1,
        le=255,
        description=(
            "Left-pad codes made only of digits to this length ('1234' -> '01234' with 5), "
            "restoring zeros a spreadsheet dropped. Longer codes (too_long) and codes with "
            "other characters (not_digits) are left as they are and counted in the result."
        ),
    )
    pad_char: str = Field(
        default="0", min_length=1, max_length=1, description="The padding character."
    )
    strip_non_digits: bool = Field(
        default=False,
        description=(
            "Remove every character that is not 0-9 first ('D-12 345' -> '12345'; note "
            "'1234.0' -> '12340')."
        ),
    )

    def needed_columns(self) -> list[str]:
        return [self.column]


@operation(
    "excel/normalize-codes",
    example={"column": "postal_code", "pad_to": 5},
    title="normalize codes",
    doing=lambda df, args: f"Normalizing codes in '{args.column}'",
)
def normalize_codes(df: pl.DataFrame, args: NormalizeCodesArgs) -> Outcome:
    """Normalize a column of codes such as postal codes or ids: trim spaces, optionally keep only
    digits, and left-pad with zeros to a fixed length.

    The result is a text column. A number column (codes a spreadsheet stored as numbers, e.g.
    1234) is worked on in its text form ('1234', whole numbers without '.0') and the result
    names it under as_text; a date or boolean column fails with column_type_mismatch."""
    dtype = df.schema[args.column]
    if not (dtype == pl.String or dtype == pl.Null or dtype.is_numeric()):
        raise column_type_mismatch(
            args.column,
            cell_kind(dtype),
            "excel/normalize-codes works on text or number columns only.",
        )
    pad_to = args.pad_to
    counts: dict[str, Any] = {}

    def normalize(text: pl.Series) -> pl.Series:
        text = text.str.strip_chars()
        if args.strip_non_digits:
            text = text.str.replace_all(r"[^0-9]", "")
        text = _empty_to_null(text)
        if pad_to is None:
            return text
        digits = text.str.contains(r"^[0-9]+$")
        length = text.str.len_chars()
        long = digits & (length > pad_to)
        counts["padded"] = int((digits & (length < pad_to)).sum())
        counts["too_long"] = int(long.sum())
        counts["not_digits"] = int((text.is_not_null() & ~digits).sum())
        counts["too_long_examples"] = (
            text.filter(long).unique(maintain_order=True).head(5).to_list()
        )
        padded = text.str.pad_start(pad_to, args.pad_char)
        return _via(text, lambda t: pl.when(digits).then(padded).otherwise(t))

    done = _changed(df, [args.column], normalize)
    changed = done.result["cells_changed"]
    as_text = done.result.get("as_text")
    return Outcome(
        done.table,
        f"Normalized {plural(changed, 'code')} in '{args.column}'{as_text_note(as_text or {})}",
        {"cells_changed": changed, **counts, **({"as_text": as_text} if as_text else {})},
    )
