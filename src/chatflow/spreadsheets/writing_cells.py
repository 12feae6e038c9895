"""The xlsx cell policy shared by every writer engine: what each value becomes in Excel.

A table is turned, column by column and mostly in polars, into cells of three kinds only:
numbers (already rounded the way they are stored), text and booleans, each column with one
number format.  Text is always an inert string cell, never a formula, number or link; integers
beyond 2**53, non-finite floats, long Decimals and dates before 1900 become text; None stays an
empty cell.  The engines only put these cells on the sheet, so they cannot disagree.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import polars as pl

from chatflow.failures import StepFailed

if TYPE_CHECKING:
    from polars._typing import PolarsDataType

DATE_FORMAT = "yyyy-mm-dd"
DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
TIME_FORMAT = "hh:mm:ss"
# Excel keeps 15 significant digits; a larger integer is written as text to stay exact.
MAX_EXACT_INT = 2**53
# Excel's limit, counted in UTF-16 code units (as Excel and xlsxwriter count it).
MAX_TEXT_UNITS = 32_767
_DAY_US = 86_400_000_000
# Days from Excel's epoch (1899-12-31, serial 0) to the Unix epoch.
_EPOCH_OFFSET_DAYS = (dt.date(1970, 1, 1) - dt.date(1899, 12, 31)).days


@dataclass(frozen=True)
class CellColumn:
    """One column as cells: per row at most one of ``numbers``/``texts``/``booleans`` is set."""

    name: str
    numbers: pl.Series | None  # Float64
    texts: pl.Series | None  # String
    booleans: pl.Series | None  # Boolean
    num_format: str | None  # for every non-empty cell of the column

    def kinds(self) -> list[pl.Series]:
        """The series that hold at least one cell."""
        present = [s for s in (self.numbers, self.texts, self.booleans) if s is not None]
        return [s for s in present if s.null_count() < s.len()]

    def mixed(self) -> bool:
        """Whether cells of more than one kind share the column."""
        return len(self.kinds()) > 1

    def only(self) -> pl.Series | None:
        """The column's single kind of cell, or None when it mixes kinds (or has no cells)."""
        kinds = self.kinds()
        return kinds[0] if len(kinds) == 1 else None

    def slice(self, offset: int, length: int) -> CellColumn:
        """Rows ``offset`` to ``offset + length`` of the column."""

        def part(s: pl.Series | None) -> pl.Series | None:
            return None if s is None else s.slice(offset, length)

        return CellColumn(
            self.name, part(self.numbers), part(self.texts), part(self.booleans), self.num_format
        )

    def values(self) -> list[Any]:
        """Every row's cell value (float, str, bool or None), in row order."""
        parts = [s for s in (self.numbers, self.texts, self.booleans) if s is not None]
        if not parts:
            return []
        if len(parts) == 1:
            return parts[0].to_list()
        lists = [s.to_list() for s in parts]
        return [next((v for v in row if v is not None), None) for row in zip(*lists, strict=True)]


def sheet_cells(
    df: pl.DataFrame, progress: Callable[[float], None] | None = None
) -> list[CellColumn]:
    """``df`` as cells; StepFailed("value_too_long") for text Excel cannot hold.  ``progress``
    hears the fraction done after each column (a big table takes seconds)."""
    columns = []
    for name in df.columns:
        columns.append(_column_cells(df.get_column(name)))
        if progress is not None:
            progress(len(columns) / df.width)
    _check_text_lengths(columns)
    return columns


def excel_number(value: float) -> float:
    """``value`` as a sheet stores it: 16 significant digits, as xlsxwriter writes numbers."""
    return float(f"{value:.16g}")


def excel_numbers(s: pl.Series) -> pl.Series:
    """``excel_number`` of each value of a Float64 series of finite numbers and nulls.

    A double whose shortest round-trip text has at most 16 significant digits is the double
    nearest its own 16-digit rounding, so it stays as it is; but for a power of two, whose
    neighbour below is nearer than the one above, the rounding can land on another double.
    polars prints that shortest text; text of at most 17 bytes holds at most 16 digits (it
    has a "." or an exponent).  So only longer text and powers of two are rounded, in Python,
    since only Python's formatting is sure to give xlsxwriter's digits.
    """
    v = pl.col("v").abs()
    # Exact: 2**round(log2|v|) is a power of two, computed exactly, and == compares exactly.
    power_of_two = pl.lit(2.0).pow(v.log(2).round()) == v
    long = (
        s.to_frame("v")
        .select((pl.col("v").cast(pl.String).str.len_bytes() > 17) | power_of_two)
        .to_series()
        .fill_null(False)
    )
    if not long.any():
        return s
    rounded = [excel_number(v) for v in s.filter(long).to_list()]
    return s.clone().scatter(long.arg_true(), pl.Series(s.name, rounded, pl.Float64))


def _column_cells(s: pl.Series) -> CellColumn:
    dtype, name = s.dtype, s.name
    if dtype == pl.Null:  # empty cells, one per row
        return CellColumn(name, None, s.cast(pl.String), None, None)
    if dtype == pl.String or isinstance(dtype, pl.Categorical | pl.Enum):
        return CellColumn(name, None, s.cast(pl.String), None, None)
    if dtype == pl.Boolean:
        return CellColumn(name, None, None, s, None)
    if dtype.is_integer():
        s = s.cast(pl.Int64) if dtype != pl.UInt64 else s  # 2**53 fits no narrower type
        big = s >= MAX_EXACT_INT
        if s.dtype.is_signed_integer():
            big = big | (s <= -MAX_EXACT_INT)
        big = big.fill_null(False)
        texts = _scatter(name, big, s.filter(big).cast(pl.String), pl.String)
        return CellColumn(
            name, s.cast(pl.Float64).zip_with(~big, _nulls(s, pl.Float64)), texts, None, None
        )
    if dtype.is_float():
        finite = s.is_finite().fill_null(False)
        numbers = excel_numbers(s.cast(pl.Float64).zip_with(finite, _nulls(s, pl.Float64)))
        special = ~finite & s.is_not_null()
        words = [str(v) for v in s.filter(special).to_list()]  # nan, inf, -inf
        texts = _scatter(name, special, pl.Series(name, words, pl.String), pl.String)
        return CellColumn(name, numbers, texts, None, None)
    if isinstance(dtype, pl.Decimal):
        return _python_cells(name, s.to_list(), _decimal_cell)
    if dtype == pl.Date:
        return _date_cells(s)
    if isinstance(dtype, pl.Datetime):
        return _datetime_cells(s)
    if dtype == pl.Time:
        us = s.cast(pl.Int64) // 1000  # Python's time (what xlsxwriter converts) holds us
        zero = pl.zeros(s.len(), pl.Int64, eager=True).alias(name)
        serial = _serial(zero, us // 1_000_000, us % 1_000_000, exact=False)
        return CellColumn(name, serial, None, None, TIME_FORMAT)
    # Durations, lists, structs, binary, objects: their Python text.
    texts = pl.Series(name, [None if v is None else str(v) for v in s.to_list()], pl.String)
    return CellColumn(name, None, texts, None, None)


def _nulls(s: pl.Series, dtype: PolarsDataType) -> pl.Series:
    return pl.repeat(None, s.len(), dtype=dtype, eager=True).alias(s.name)


def _scatter(name: str, mask: pl.Series, values: pl.Series, dtype: PolarsDataType) -> pl.Series:
    """A column null everywhere but where ``mask`` is set, which takes ``values`` in order."""
    out = _nulls(mask.alias(name), dtype)
    index = mask.arg_true()
    return out.scatter(index, values) if index.len() else out


def _date_cells(s: pl.Series) -> CellColumn:
    early = (s.dt.year() < 1900).fill_null(False)
    days = s.cast(pl.Int64) + _EPOCH_OFFSET_DAYS
    zero = pl.zeros(s.len(), pl.Int64, eager=True).alias(s.name)
    numbers = _serial(days, zero, zero, exact=True).zip_with(~early, _nulls(s, pl.Float64))
    return CellColumn(s.name, numbers, _iso_texts(s, early), None, DATE_FORMAT)


def _datetime_cells(s: pl.Series) -> CellColumn:
    # Naive wall-clock time, as xlsxwriter's remove_timezone gives it.
    local = s.dt.replace_time_zone(None) if getattr(s.dtype, "time_zone", None) else s
    early = (local.dt.year() < 1900).fill_null(False)
    # Whole microseconds since Excel's epoch, as Python's datetime (what xlsxwriter sees).
    us = local.cast(pl.Datetime("us")).dt.epoch("us") + _EPOCH_OFFSET_DAYS * _DAY_US
    rest = us % _DAY_US
    serial = _serial(us // _DAY_US, rest // 1_000_000, rest % 1_000_000, exact=False)
    # xlsxwriter's quirk: a datetime on 1900-01-01 counts from day 0.
    jan1 = (local.dt.date() == dt.date(1900, 1, 1)).fill_null(False)
    serial = (serial - 1.0).zip_with(jan1, serial)
    numbers = serial.zip_with(~early, _nulls(s, pl.Float64))
    return CellColumn(s.name, numbers, _iso_texts(s, early), None, DATETIME_FORMAT)


def _iso_texts(s: pl.Series, early: pl.Series) -> pl.Series | None:
    """Dates before 1900, which Excel cannot show, as ISO text; None when there are none."""
    if not early.any():
        return None
    iso = [v.isoformat() for v in s.filter(early).to_list()]
    return _scatter(s.name, early, pl.Series(s.name, iso, pl.String), pl.String)


def _serial(days: pl.Series, seconds: pl.Series, micros: pl.Series, *, exact: bool) -> pl.Series:
    """Excel serial numbers by xlsxwriter's own arithmetic, so the doubles come out the same;
    ``exact`` (whole days) skips the 16-digit rounding that cannot change them."""
    frame = pl.DataFrame({"d": days, "s": seconds, "u": micros})
    serial = (
        pl.col("d").cast(pl.Float64)
        + (pl.col("s").cast(pl.Float64) + pl.col("u").cast(pl.Float64) / 1e6) / 86400.0
    )
    serial = pl.when(serial > 59).then(serial + 1.0).otherwise(serial)  # Excel's 1900-02-29
    result = frame.select(serial.alias(days.name)).to_series()
    return result if exact else excel_numbers(result)


def _decimal_cell(value: Decimal) -> float | str:
    """As a number when a double holds it exactly enough (15 digits), else as text."""
    if value.is_finite() and len(value.as_tuple().digits) <= 15:
        return excel_number(float(value))
    return str(value)


def _python_cells(name: str, values: list[Any], convert: Any) -> CellColumn:
    cells = [None if v is None else convert(v) for v in values]
    numbers = pl.Series(name, [v if isinstance(v, float) else None for v in cells], pl.Float64)
    texts = pl.Series(name, [v if isinstance(v, str) else None for v in cells], pl.String)
    return CellColumn(name, numbers, texts, None, None)


def _check_text_lengths(columns: list[CellColumn]) -> None:
    """StepFailed for the first cell (by row, then column) longer than Excel allows."""
    first: tuple[int, int] | None = None
    for col, column in enumerate(columns):
        if column.texts is None:
            continue
        # Half the limit in characters cannot exceed it in UTF-16 units: only those are counted.
        long = column.texts.str.len_chars() > MAX_TEXT_UNITS // 2
        for row in long.arg_true().to_list():
            text = column.texts[row]
            if len(text.encode("utf-16-le", "surrogatepass")) // 2 > MAX_TEXT_UNITS:
                first = min(first or (row, col), (row, col))
                break
    if first is not None:
        row, col = first
        raise StepFailed(
            "value_too_long",
            f"Row {row + 1}, column '{columns[col].name}': the text is longer than the "
            "32,767 characters an Excel cell can hold.",
        )
