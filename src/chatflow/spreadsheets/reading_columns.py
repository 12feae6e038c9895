"""The typed read of a workbook sheet with whole columns typed in Rust (fastexcel), for the
sheets whose result is provably what the per-cell read (``reading_workbook``) gives.

fastexcel types a column from all its cells (``schema_sample_rows=None``) and, with
``dtype_coercion="strict"``, refuses a column whose cells are of more than one kind, so every
column it returns holds one kind of cell, converted in Rust.  What it does not say is checked
here, and anything this module cannot prove identical returns None, so the caller reads the
sheet cell by cell instead.  The proofs:

- text that fastexcel takes for empty ("", "NA", "n/a", "null", "nan" and a dozen more) hides
  only in a null of a number, boolean or date column (or as NaN, for "nan"); a column with
  such nulls is read again as text (one more parse, of those columns only) and any non-empty
  text there sends the sheet to the per-cell read, which keeps it;
- a date-time before 1904-01-02 is a time of day (a serial below 1) or an epoch-near date the
  per-cell read types otherwise, and a year past 9999 is a number there: per-cell read;
- durations, NaN and infinities: per-cell read;
- the header comes from fastexcel's column names only when each is the cell's own text: a
  name fastexcel generated (a blank, boolean or date cell), renamed (``a_1`` beside ``a``) or
  that reads as a number whose ``cell_text`` differs sends the sheet to the per-cell read.

The header row is the first row of calamine's used range, as in the per-cell read, unless
it is wholly blank (then the per-cell read finds the first non-blank row).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from pathlib import Path

import fastexcel
import polars as pl

from chatflow.spreadsheets.cell_types import cell_text, narrow, number_text
from chatflow.spreadsheets.headers import unique_headers

# fastexcel logs a warning for every column without a typed cell; an empty column is no news.
logging.getLogger("fastexcel").setLevel(logging.ERROR)

_OLDEST = dt.datetime(1904, 1, 2)  # before it: a serial below 1 in either date system
_NEWEST = dt.datetime(9999, 12, 31, 23, 59, 59, 999000)
_ALIAS = re.compile(r"^(.*)_([0-9]+)$")
_TYPED = (pl.Float64, pl.Int64, pl.Boolean, pl.Date)


def read_columns(source: Path | bytes, sheet: str | None) -> pl.DataFrame | None:
    """The typed table of ``sheet`` (default: the first), or None where only the per-cell read
    is exact, or where fastexcel fails in any way (a missing sheet included): the per-cell read
    then reports the failure as it always has."""
    try:
        reader = fastexcel.read_excel(source)
        names = reader.sheet_names
        if sheet is None and names:
            sheet = names[0]
        if sheet not in names:
            return None
        loaded = reader.load_sheet(
            sheet, header_row=0, schema_sample_rows=None, dtype_coercion="strict"
        )
        header = _header(loaded.available_columns())
        if header is None:
            return None
        grid = loaded.to_polars()
        if not all(_trusted(grid.get_column(c)) for c in grid.columns):
            return None
        suspects = [i for i, c in enumerate(grid.columns) if _may_hide_text(grid.get_column(c))]
        if suspects:
            rebuilt = _with_hidden_text(reader, sheet, grid, suspects)
            if rebuilt is None:
                return None
            grid = rebuilt
    except BaseException as exc:  # pyo3 turns a Rust panic into PanicException(BaseException)
        if isinstance(exc, Exception) or type(exc).__name__ == "PanicException":
            return None
        raise
    table = pl.DataFrame([_final(grid.to_series(i)).alias(n) for i, n in enumerate(header)])
    return table.filter(~pl.all_horizontal(pl.all().is_null()))


def _header(columns: list[fastexcel.ColumnInfo]) -> list[str] | None:
    """The header names by ``unique_headers`` from the cells' own text, or None if unsure."""
    raw: list[str] = []
    for column in columns:
        name = column.name
        if column.column_name_from != "looked_up":
            return None  # blank, or a boolean, date or error cell: they read differently
        alias = _ALIAS.match(name)
        if alias and alias.group(1) in raw:
            return None  # fastexcel renames repeats; "a_1" may have been another "a"
        if not _reads_as_itself(name):
            return None
        raw.append(name)
    if not any(raw):
        return None  # a blank first row: the header is further down
    return unique_headers(raw)


def _reads_as_itself(name: str) -> bool:
    """Whether a header cell that fastexcel names ``name`` has ``cell_text`` ``name`` whether
    it was text or a number (fastexcel writes a number in Rust's shortest form)."""
    try:
        number = float(name)
    except ValueError:
        return True
    return cell_text(number) == name


def _trusted(s: pl.Series) -> bool:
    """Whether fastexcel's column holds what the per-cell read would make of the same cells."""
    if s.dtype in (pl.String, pl.Null, pl.Boolean, pl.Int64, pl.Date):
        return True
    if s.dtype == pl.Float64:
        return bool(s.drop_nulls().is_finite().all())
    if isinstance(s.dtype, pl.Datetime):
        inside = s.drop_nulls().is_between(_OLDEST, _NEWEST)
        return bool(inside.all())
    return False  # durations: the per-cell read renders them as text


def _may_hide_text(s: pl.Series) -> bool:
    """A typed column's nulls may be text that fastexcel read as empty."""
    typed = s.dtype in _TYPED or isinstance(s.dtype, pl.Datetime)
    return typed and s.null_count() > 0


def _with_hidden_text(
    reader: fastexcel.ExcelReader, sheet: str, grid: pl.DataFrame, suspects: list[int]
) -> pl.DataFrame | None:
    """``grid`` with each suspect column that hides text among its nulls made the mixed column
    the per-cell read makes of it (``cells_to_series``): numbers and booleans as ``cell_text``
    renders them, text as stored.  None if a date column hides text (its cells' rendering
    depends on serials this read no longer has)."""
    as_text = reader.load_sheet(
        sheet,
        header_row=0,
        use_columns=[grid.columns[i] for i in suspects],  # names: indices count from column A
        dtypes={grid.columns[i]: "string" for i in suspects},
    ).to_polars()
    for i, text in zip(suspects, as_text.iter_columns(), strict=True):
        typed = grid.to_series(i)
        hidden = pl.select(pl.lit(typed).is_null() & (pl.lit(text) != "")).to_series()
        if not hidden.any():
            continue
        if typed.dtype not in (pl.Float64, pl.Int64, pl.Boolean):
            return None
        shown = (
            typed.replace_strict({True: "true", False: "false"}, return_dtype=pl.String)
            if typed.dtype == pl.Boolean
            else pl.select(number_text(pl.lit(typed.cast(pl.Float64)))).to_series()
        )
        stored = pl.select(pl.when(pl.lit(text) != "").then(pl.lit(text))).to_series()
        mixed = shown.fill_null(stored)
        grid = grid.with_columns(mixed.alias(grid.columns[i]))
    return grid


def _final(s: pl.Series) -> pl.Series:
    """One column in its final type: "" is empty, numbers narrowed, dates Date."""
    if s.dtype == pl.Null:
        return s.cast(pl.String)
    if s.dtype == pl.String:
        return pl.select(pl.when(pl.lit(s) != "").then(pl.lit(s))).to_series().alias(s.name)
    if s.dtype == pl.Int64:
        return narrow(s.cast(pl.Float64))
    if s.dtype == pl.Date:
        return s
    return narrow(s)
