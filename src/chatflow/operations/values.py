"""Reading meaning out of cells, vectorised: numbers, ISO dates, booleans; cells as text or JSON.

Columns arrive typed (``spreadsheets.cell_types``); a text column may still hold numbers, dates
or booleans as text (a mixed xlsx column, csv without one reading, or values given in
arguments), and operations that compare, sort or convert such text parse it here, the same way
everywhere:

- a number is optional sign, digits with an optional decimal point, optional exponent ("12",
  "-3.5", ".5", "1e3"), surrounded by optional whitespace; "inf", "nan", "0x1F" are not numbers.
  Thousands separators are accepted only where asked (``grouping``) and only in their proper
  place ("1,234,567.5"; with a decimal comma "1.234.567,5" or "1 234,5").
- an ISO date is "YYYY-MM-DD", optionally followed by a space or "T" and "HH:MM", "HH:MM:SS" or
  "HH:MM:SS.ffffff" (how the reader renders real Excel dates); no time zones.
- a boolean is true/false, yes/no, 1/0, in any case.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from decimal import Decimal
from typing import Any

import polars as pl

from chatflow.spreadsheets.cell_types import cell_kind, number_text

_NUMBER = r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"
_GROUPED_POINT = r"^[+-]?[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]*)?$"  # 1,234,567.5
_GROUPED_COMMA = (
    r"^[+-]?[0-9]{1,3}(?:[. \u00a0\u202f][0-9]{3})+(?:,[0-9]*)?$"  # 1.234.567,5 / 1 234,5
)
_PLAIN_COMMA = r"^[+-]?(?:[0-9]+,?[0-9]*|,[0-9]+)(?:[eE][+-]?[0-9]+)?$"  # 3,5
_INTEGER = r"^[+-]?[0-9]+$"
_WHOLE_DECIMAL = r"^([+-]?[0-9]+)\.0*$"  # "12.0" is the whole number 12
_ISO = (
    r"^([0-9]{4}-[0-9]{2}-[0-9]{2})(?:[ T]([0-9]{2}:[0-9]{2})(?::([0-9]{2})(?:\.([0-9]{1,9}))?)?)?$"
)
_ISO_PY = re.compile(_ISO)
_ISO_FORMATS = (
    "%Y-%m-%d",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%dT%H:%M",
)
_TRUE = ["true", "yes", "1"]
_FALSE = ["false", "no", "0"]
# A cell value given in arguments: JSON text, number or boolean, used as text the way the
# reader renders cells (true/false, 1234, 3.5).
CellValue = str | bool | int | float


def value_text(value: CellValue) -> str:
    """``value`` as cell text: booleans true/false, whole floats without ".0"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return str(value)


def text_of(name: str, dtype: pl.DataType) -> pl.Expr:
    """A column as text: text as is, dates ISO, datetimes "YYYY-MM-DD HH:MM:SS[.fff]", others
    cast."""
    col = pl.col(name)
    if dtype == pl.String:
        return col
    if dtype == pl.Date:
        return col.dt.to_string("%Y-%m-%d")
    if isinstance(dtype, pl.Datetime):
        return col.dt.to_string("%Y-%m-%d %H:%M:%S%.f")
    return col.cast(pl.String)


def text_form(name: str, dtype: pl.DataType) -> pl.Expr:
    """A column as the text its cells read as (``cell_types.cell_text``, vectorised): numbers
    in shortest form without ".0" ("120", "3.5"), booleans true/false, dates ISO, datetimes
    "YYYY-MM-DD HH:MM:SS" (with ".ffffff" only when a value has a fraction), text as is."""
    col = pl.col(name)
    if dtype == pl.String:
        return col
    if dtype.is_float():
        return number_text(col)
    if dtype == pl.Date:
        return col.dt.to_string("%Y-%m-%d")
    if isinstance(dtype, pl.Datetime):
        whole = col == col.dt.truncate("1s")
        seconds = col.dt.to_string("%Y-%m-%d %H:%M:%S")
        return pl.when(whole).then(seconds).otherwise(col.dt.to_string("%Y-%m-%d %H:%M:%S%.6f"))
    return col.cast(pl.String)


def non_text_kinds(schema: pl.Schema, columns: list[str]) -> dict[str, str]:
    """Of ``columns``, those that are not text (nor all-empty ``Null``), with their type's name:
    what a text operation worked on in text form, for its result."""
    return {
        c: cell_kind(schema[c]) for c in columns if schema[c] != pl.String and schema[c] != pl.Null
    }


def as_text_note(kinds: dict[str, str]) -> str:
    """For a message: "; used 'zip' (integer) as text, the result is text", or ""."""
    if not kinds:
        return ""
    listed = ", ".join(f"'{c}' ({k})" for c, k in kinds.items())
    return f"; used {listed} as text, the result is text"


def is_empty(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """True where a cell is empty: null, or (text) "" or only whitespace."""
    if dtype == pl.String:
        return expr.is_null() | (expr.str.strip_chars() == "")
    return expr.is_null()


def blank_to_null(expr: pl.Expr) -> pl.Expr:
    """Text that is "" becomes null, the way the reader treats empty cells."""
    return pl.when(expr == "").then(None).otherwise(expr)


def plain(value: Any, max_text: int = 200) -> Any:
    """A cell as a small JSON value: text cut to ``max_text`` characters (with "…"), non-finite
    floats and other objects as text, dates in ISO form."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return value if len(value) <= max_text else value[: max_text - 1] + "…"
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return plain(str(value), max_text)


def shown(value: Any, chars: int = 60) -> str:
    """``value`` quoted for a message, text cut to ``chars`` characters: arguments may be
    thousands of characters long, and messages are stored with every event."""
    return repr(plain(value, chars) if isinstance(value, str) else value)


def _normalized_number_text(text: pl.Expr, *, decimal_comma: bool, grouping: bool) -> pl.Expr:
    """The stripped text rewritten as a plain "123.45" number, or null if it is not one."""
    s = text.str.strip_chars()
    cases: list[tuple[pl.Expr, pl.Expr]]
    if decimal_comma:
        cases = [(s.str.contains(_PLAIN_COMMA), s.str.replace(",", ".", literal=True))]
        if grouping:
            ungrouped = s.str.replace_all(r"[. \u00a0\u202f]", "").str.replace(",", ".")
            cases.append((s.str.contains(_GROUPED_COMMA), ungrouped))
    else:
        cases = [(s.str.contains(_NUMBER), s)]
        if grouping:
            cases.append((s.str.contains(_GROUPED_POINT), s.str.replace_all(",", "", literal=True)))
    result = pl.lit(None, dtype=pl.String)
    for condition, value in reversed(cases):
        result = pl.when(condition).then(value).otherwise(result)
    return result


def parse_float(text: pl.Expr, *, decimal_comma: bool = False, grouping: bool = False) -> pl.Expr:
    """Float64 of number text; null for anything else (including empty cells)."""
    normalized = _normalized_number_text(text, decimal_comma=decimal_comma, grouping=grouping)
    return normalized.cast(pl.Float64, strict=False)


def as_number(expr: pl.Expr) -> pl.Expr:
    """Any column as finite Float64 (text stripped); what is not a finite number becomes null.

    ``parse_float``'s rule without infinities, on the cast's fast path: the cast alone accepts
    exactly the number text ``_NUMBER`` does, plus inf/nan, which the finiteness test drops.
    """
    number = expr.cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False)
    return pl.when(number.is_finite()).then(number).otherwise(None)


def as_integer(expr: pl.Expr) -> pl.Expr:
    """Any column as Int64 (text stripped); what is not a whole number that fits in 64 bits
    ("1.0" included, unlike ``parse_int``) becomes null."""
    return expr.cast(pl.String).str.strip_chars().cast(pl.Int64, strict=False)


def parse_int(text: pl.Expr, *, decimal_comma: bool = False, grouping: bool = False) -> pl.Expr:
    """Int64 of whole-number text ("12", "+12", "12.0", "1,234" with grouping), exact for
    large values; null for fractions, out-of-range values and anything else."""
    normalized = _normalized_number_text(text, decimal_comma=decimal_comma, grouping=grouping)
    whole = normalized.str.extract(_WHOLE_DECIMAL, 1)
    digits = pl.when(normalized.str.contains(_INTEGER)).then(normalized).otherwise(whole)
    return digits.cast(pl.Int64, strict=False)


def parse_datetime(text: pl.Expr, fmt: str | None = None) -> pl.Expr:
    """Datetime (microseconds) of ISO text, or of text in strftime ``fmt`` with ISO accepted
    as well; null for anything else or impossible dates (2023-02-29)."""
    s = text.str.strip_chars()
    # strptime is much faster than taking the text apart; the regex keeps the shapes exact.
    parsed = pl.coalesce(s.str.strptime(pl.Datetime("us"), f, strict=False) for f in _ISO_FORMATS)
    iso = pl.when(s.str.contains(_ISO)).then(parsed)
    if fmt is None:
        return iso
    return pl.coalesce(s.str.strptime(pl.Datetime("us"), fmt, strict=False), iso)


def parse_date(text: pl.Expr, fmt: str | None = None) -> pl.Expr:
    """Date of ISO date or datetime text (the time is dropped), or of text in ``fmt``."""
    if fmt is None:
        return parse_datetime(text).dt.date()
    given = text.str.strip_chars().str.strptime(pl.Date, fmt, strict=False)
    return pl.coalesce(given, parse_datetime(text).dt.date())


def parse_bool(text: pl.Expr) -> pl.Expr:
    """True for true/yes/1, False for false/no/0 (any case, surrounding spaces ignored)."""
    s = text.str.strip_chars().str.to_lowercase()
    return pl.when(s.is_in(_TRUE)).then(True).when(s.is_in(_FALSE)).then(False).otherwise(None)


def _digits_end(text: str, at: int) -> int:
    """The index after the run of ASCII digits starting at ``at``."""
    rest = text[at:]
    return at + len(rest) - len(rest.lstrip("0123456789"))


def is_number_text(text: str) -> bool:
    """Whether ``text`` (already stripped) is number text by ``_NUMBER``'s rule.

    Scanned by hand rather than with Python's ``re``: the pattern's ``[0-9]+\\.?[0-9]*``
    backtracks quadratically on "1111...1x", and ``re`` holds the GIL while it does.
    """
    at = 1 if text[:1] in ("+", "-") else 0
    after_int = _digits_end(text, at)
    digits = after_int - at
    at = after_int
    if text[at : at + 1] == ".":
        after_frac = _digits_end(text, at + 1)
        digits += after_frac - at - 1
        at = after_frac
    if digits == 0:
        return False
    if text[at : at + 1] in ("e", "E"):
        at += 2 if text[at + 1 : at + 2] in ("+", "-") else 1
        exponent_end = _digits_end(text, at)
        if exponent_end == at:
            return False
        at = exponent_end
    return at == len(text)


def number_value(text: str) -> float | None:
    """A number given in arguments as text, by the same rule as cells."""
    stripped = text.strip()
    return float(stripped) if is_number_text(stripped) else None


def iso_value(text: str) -> tuple[dt.datetime, bool] | None:
    """An ISO date or datetime given in arguments: (value, whether it has a time part)."""
    found = _ISO_PY.fullmatch(text.strip())
    if found is None:
        return None
    date, hm, sec, frac = found.groups()
    stamp = f"{date} {hm or '00:00'}:{sec or '00'}.{(frac or '0').ljust(6, '0')[:6]}"
    try:
        return dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f"), hm is not None
    except ValueError:
        return None
