"""The type rule: what each column of an uploaded xlsx or csv file becomes, and how numbers
are written back as text.  One rule for both formats, so a table means the same whatever it
came from.

xlsx cells carry their kind, so a column keeps the kind its non-empty cells share:
- every cell a number: ``Int64`` when every value is whole and within +-2**53, else
  ``Float64`` (exactly the double the file held);
- every cell a boolean: ``Boolean``;
- every cell a date: ``Date``, or ``Datetime`` when any of them has a time of day; every cell
  a time of day: ``Time``;
- every cell text: ``String``, exactly as stored (leading zeros, long ids, spaces);
- cells of more than one kind: ``String``, each cell as it reads (``cell_text``): numbers in
  the shortest form that reads back as the same double, whole ones without ".0"; booleans
  ``true``/``false``; dates ISO.  ``excel/convert-types`` converts such a column on request.
Error cells and formulas without a cached value are empty.

csv has no kinds, so a column is typed only when every non-empty value has one reading:
- numbers: an optional "-", digits, an optional "." with digits, no leading zero before
  another digit ("007" and "+1" stay text), or the exponent form ``number_text`` itself writes
  ("1e+20"); at most 15 significant digits, unless the value has a "." and is exactly the
  shortest text of its double ("0.30000000000000004", as ``number_text`` writes a computed
  float), so a 16-digit id stays text and a float written by the service reads back as a
  number; ``Int64`` when no value has a "." or an exponent, else ``Float64``;
- ISO dates "YYYY-MM-DD" (``Date``), with some "YYYY-MM-DD HH:MM[:SS[.f]]" ("T" also
  accepted) making the column ``Datetime``;
- everything else is text: booleans as words, decimal commas, thousands separators, "1.",
  ".5", "NaN".  ``excel/convert-types`` handles those on request.

Writing: ``number_text`` renders numbers for csv and for mixed columns (the reader accepts
exactly what it writes), ``datetime_format`` dates.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Any, Literal

import polars as pl

Kind = Literal["integer", "float", "boolean", "date", "datetime", "time", "text", "empty", "other"]

MAX_EXACT_INT = 2**53
MAX_SIGNIFICANT_DIGITS = 15
_CANONICAL_NUMBER = r"^(?:0|-?[1-9][0-9]*)(?:\.[0-9]+)?$|^-0\.[0-9]+$"
_EXPONENT_NUMBER = r"^-?[0-9](?:\.[0-9]+)?e[+-][0-9]+$"
_ISO_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
# A date, or a date and a time of day: what makes a column Datetime.
_ISO_STAMP = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[ T][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,9})?)?)?$"
)
_NUMBER = f"(?:{_CANONICAL_NUMBER})|(?:{_EXPONENT_NUMBER})"
_DATETIME_PARSE = (
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%dT%H:%M",
)


def cell_kind(dtype: pl.DataType) -> Kind:
    """The user-facing name of a column's type."""
    if dtype.is_integer():
        return "integer"
    if dtype.is_float() or isinstance(dtype, pl.Decimal):
        return "float"
    if dtype == pl.Boolean:
        return "boolean"
    if dtype == pl.Date:
        return "date"
    if isinstance(dtype, pl.Datetime):
        return "datetime"
    if dtype == pl.Time:
        return "time"
    if dtype == pl.Null:
        return "empty"
    if dtype == pl.String or isinstance(dtype, pl.Categorical | pl.Enum):
        return "text"
    return "other"


# --- numbers as text ----------------------------------------------------------------------


def number_text(expr: pl.Expr) -> pl.Expr:
    """Numbers as text in their shortest round-trip form, whole ones without ".0"."""
    return expr.cast(pl.String).str.strip_suffix(".0")


def cell_text(value: Any) -> str:
    """One cell of a mixed column as text, by the same rules as ``number_text``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return pl.select(number_text(pl.lit(float(value)))).item() if math.isfinite(value) else ""
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)


def datetime_format(s: pl.Series) -> str:
    """The csv format of a datetime column: whole seconds unless some value has a fraction."""
    fraction = (s.dt.microsecond() != 0).any() or (s.dt.nanosecond() != 0).any()
    return "%Y-%m-%d %H:%M:%S%.6f" if fraction else "%Y-%m-%d %H:%M:%S"


# --- csv -------------------------------------------------------------------------------------


def type_text_columns(table: pl.DataFrame) -> pl.DataFrame:
    """Apply the csv rule to every String column of ``table`` (nulls are empty cells).

    Each column is checked for one kind at a time, in the rule's order (numbers, dates,
    datetimes), skipping kinds its first rows rule out; the checks of all columns run as one
    polars query, and so do the conversions, so columns are handled in parallel.
    """
    names = [
        n
        for n, s in zip(table.columns, table.iter_columns(), strict=True)
        if s.dtype == pl.String and s.null_count() < s.len()
    ]
    sample = [(n, k) for n in names for k in (*_KINDS, "fractions")]
    head = _all_of_kind(table.head(_SAMPLE_ROWS), sample)
    candidates = {n: [k for k in _KINDS if (n, k) in head] for n in names}
    pending = {n: left for n, left in candidates.items() if left}
    kinds: dict[str, str] = {}
    while pending:
        asked = [(n, left[0]) for n, left in pending.items()]
        held = _all_of_kind(table, asked)
        for name, kind in asked:
            if (name, kind) in held:
                kinds[name] = kind
            if (name, kind) in held or len(pending[name]) == 1:
                del pending[name]
            else:
                pending[name].pop(0)
    for name, kind in kinds.items():  # a fraction among the first rows: not whole numbers
        if kind == "numbers" and (name, "fractions") in head:
            kinds[name] = "fractions"
    converted = table.select(_CONVERSIONS[kind](pl.col(name)) for name, kind in kinds.items())
    typed = [_finish(table.get_column(n), converted.get_column(n), k) for n, k in kinds.items()]
    changed = [s for s in typed if s is not None]
    return table.with_columns(changed) if changed else table


_KINDS = ("numbers", "dates", "datetimes")
_SAMPLE_ROWS = 1000


def _kind_check(v: pl.Expr, kind: str) -> pl.Expr:
    """True if every non-null value of ``v`` is of ``kind`` (for "fractions": if any is)."""
    if kind == "numbers":
        long = v.filter(v.str.len_bytes() > MAX_SIGNIFICANT_DIGITS)  # shorter: few digits
        rest = long.filter(~_exact_double_text(long))  # most long values are a double's text
        digits = rest.str.replace(r"e.*$", "").str.replace_all(r"[-.]", "")
        few = digits.str.strip_chars_start("0").str.len_chars() <= MAX_SIGNIFICANT_DIGITS
        return v.str.contains(_NUMBER).all() & few.all()
    if kind == "fractions":  # some value is not whole (if all are numbers)
        return v.str.contains(r"[.e]").any()
    return v.str.contains(_ISO_DATE if kind == "dates" else _ISO_STAMP).all()


def _exact_double_text(text: pl.Expr) -> pl.Expr:
    """Whether each value has a "." and is its double's shortest text: read as a Float64, it
    loses nothing, however many digits it has."""
    same = number_text(text.cast(pl.Float64, strict=False)) == text
    return (text.str.contains(".", literal=True) & same).fill_null(False)


def _all_of_kind(table: pl.DataFrame, asked: list[tuple[str, str]]) -> set[tuple[str, str]]:
    """The (column, kind) pairs of ``asked`` for which every value is of that kind."""
    if not asked:
        return set()
    row = table.select(_kind_check(pl.col(n), k).alias(str(i)) for i, (n, k) in enumerate(asked))
    return {pair for pair, held in zip(asked, row.row(0), strict=True) if held}


# The first try at each kind, for every column at once: whole numbers, dates, and datetimes
# in the fast fixed format (values it cannot read go on to ``_DATETIME_PARSE``).
_CONVERSIONS = {
    "numbers": lambda v: v.cast(pl.Int64, strict=False),
    "fractions": lambda v: v.cast(pl.Float64, strict=False),
    "dates": lambda v: v.str.strptime(pl.Date, "%Y-%m-%d", strict=False),
    "datetimes": lambda v: v.str.strptime(
        pl.Datetime("us"), "%Y-%m-%d %H:%M:%S", strict=False, cache=False
    ),
}


def _finish(s: pl.Series, first: pl.Series, kind: str) -> pl.Series | None:
    """The column in ``kind`` from its first conversion, or None if it stays text."""
    if kind == "fractions":
        return _as_float(s, first)
    if first.null_count() == s.null_count() or kind == "dates":
        return _strict(s, first)
    if kind == "numbers":  # not all whole after all
        return _as_float(s, s.cast(pl.Float64, strict=False))
    parsed = first
    for f in (*_DATETIME_PARSE, "%Y-%m-%d"):  # the first format that reads a value wins
        parsed = parsed.fill_null(s.str.strptime(pl.Datetime("us"), f, strict=False, cache=False))
        if parsed.null_count() == s.null_count():
            break
    return _strict(s, parsed)


def _as_float(s: pl.Series, floats: pl.Series) -> pl.Series | None:
    has_exponent = s.str.contains("e", literal=True).fill_null(False)
    if has_exponent.any():  # only the form number_text writes reads back as a number
        written = pl.select(number_text(pl.lit(floats))).to_series()
        if (has_exponent & (written != s).fill_null(True)).any():
            return None
    return _strict(s, floats)


def _strict(text: pl.Series, typed: pl.Series) -> pl.Series | None:
    """``typed`` if every value converted (2023-02-29 does not), else None: the column is text."""
    return typed if typed.null_count() == text.null_count() else None


# --- xlsx ------------------------------------------------------------------------------------


def narrow(s: pl.Series) -> pl.Series:
    """A column of one kind of xlsx cell in its final type: whole numbers Int64, dates Date."""
    if s.dtype.is_float():
        values = s.drop_nulls()
        exact = values.is_finite().all() and (values == values.round(0)).all()
        if exact and (values.abs() <= MAX_EXACT_INT).all():
            return s.cast(pl.Int64)
        return s
    if isinstance(s.dtype, pl.Datetime):
        stamps = s.cast(pl.Datetime("us"))
        values = stamps.drop_nulls()
        if (values == values.dt.truncate("1d")).all():
            return stamps.dt.date()
        return stamps
    return s


def cells_to_series(name: str, cells: Sequence[Any]) -> pl.Series:
    """One column from Python cell values (None or "" = empty) by the xlsx rule."""
    kinds = set(map(type, cells))
    if str in kinds and "" in cells:
        cells = [None if v == "" else v for v in cells]
        kinds = set(map(type, cells))
    kinds.discard(type(None))
    if not kinds:
        return pl.Series(name, [None] * len(cells), pl.String)
    if kinds <= {int, float}:
        return narrow(pl.Series(name, cells, pl.Float64, strict=False))
    if kinds <= {dt.date, dt.datetime}:
        stamps = [v if isinstance(v, dt.datetime) or v is None else _midnight(v) for v in cells]
        return narrow(pl.Series(name, stamps, pl.Datetime("us")))
    single = {bool: pl.Boolean, dt.time: pl.Time, str: pl.String}
    if len(kinds) == 1 and (dtype := single.get(next(iter(kinds)))) is not None:
        return pl.Series(name, cells, dtype)
    # Mixed: every cell as it reads; numbers rendered together, in polars.
    numbers = pl.Series(name, [_number_or_none(v) for v in cells], pl.Float64)
    others = pl.Series(
        name,
        [None if v is None or _number_or_none(v) is not None else cell_text(v) for v in cells],
        pl.String,
    )
    return others.fill_null(pl.select(number_text(pl.lit(numbers))).to_series())


def _number_or_none(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day)
