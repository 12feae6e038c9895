"""Reading meaning out of text cells, vectorised: numbers, ISO dates, booleans, and regexes.

Cells arrive as text (see ``spreadsheets.reading``), so operations that compare, sort or convert
parse them here, the same way everywhere:

- a number is optional sign, digits with an optional decimal point, optional exponent ("12",
  "-3.5", ".5", "1e3"), surrounded by optional whitespace; "inf", "nan", "0x1F" are not numbers.
  Thousands separators are accepted only where asked (``grouping``) and only in their proper
  place ("1,234,567.5"; with a decimal comma "1.234.567,5" or "1 234,5").
- an ISO date is "YYYY-MM-DD", optionally followed by a space or "T" and "HH:MM", "HH:MM:SS" or
  "HH:MM:SS.ffffff" (how the reader renders real Excel dates); no time zones.
- a boolean is true/false, yes/no, 1/0, in any case.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Iterator

import polars as pl
from pydantic_core import PydanticCustomError

from chatflow.operations.registry import StepFailed

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
# chrono's strftime directives (what polars parses with), with optional padding flags.
_DIRECTIVE = re.compile(r"%[-_0]?(?:[YCymbBhdeaAwuUWGgVjDxFvHkIlPpMSRTXrZzstn%+]|\.?[369]?f|:z)")
_REGEX_META = set("\\.+*?()|[]{}^$#&-~")


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


def number_value(text: str) -> float | None:
    """A number given in arguments as text, by the same rule as cells."""
    stripped = text.strip()
    return float(stripped) if re.fullmatch(_NUMBER, stripped) else None


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


def regex_escape(text: str) -> str:
    """``text`` as a regex matching itself literally (Rust regex syntax)."""
    return "".join(f"\\{c}" if c in _REGEX_META else c for c in text)


def check_regex(pattern: str, *, allow_empty_match: bool = True) -> str:
    """Validator body: ``pattern`` must compile as a polars (Rust) regex.

    Raises a pydantic error of type ``invalid_regex``, so a bad pattern is refused when the
    workflow is submitted.
    """
    probe = pl.Series("probe", [""], dtype=pl.String)
    try:
        matches_empty = bool(probe.str.contains(pattern).item())
    except pl.exceptions.PolarsError as exc:
        reason = str(exc).split("\n\nThis error occurred", 1)[0]
        raise PydanticCustomError(
            "invalid_regex", "invalid regular expression: {reason}", {"reason": reason}
        ) from None
    if matches_empty and not allow_empty_match:
        raise PydanticCustomError(
            "invalid_regex", "the regular expression must not match empty text", {}
        )
    return pattern


@contextlib.contextmanager
def regex_errors(pattern: str) -> Iterator[None]:
    """Turn a regex polars refuses while running (rare once validated) into invalid_regex."""
    try:
        yield
    except pl.exceptions.ComputeError as exc:
        if "regex" not in str(exc):
            raise
        reason = str(exc).split("\n\nThis error occurred", 1)[0]
        raise StepFailed(
            "invalid_regex",
            f"Invalid regular expression {pattern!r}: {reason}",
            details={"pattern": pattern},
        ) from None


def check_strftime(fmt: str) -> str:
    """Validator body: a strftime-style format made of known % directives (at least one)."""
    if "%" not in fmt:
        raise ValueError("format needs % directives, e.g. '%d/%m/%Y'")
    unknown = _DIRECTIVE.sub("", fmt)
    if "%" in unknown:
        raise ValueError(f"format {fmt!r} has an unknown % directive")
    return fmt
