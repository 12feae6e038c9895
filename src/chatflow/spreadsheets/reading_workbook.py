"""Read one sheet of a workbook (xlsx, xls, xlsb or ods) into a typed table by ``cell_types``.

The rule is defined cell by cell: python-calamine gives each cell with its own kind (number,
boolean, date, time, text), so a column's type follows from its cells, whatever the format.
xlsx and ods sheets are first read by whole columns with fastexcel (``reading_columns``, about
twice as fast), which answers only where its table is provably the per-cell one: fastexcel
alone reads text such as "n/a", "NA", "null" or "nan" in a numeric or date column as empty (or
NaN), renders numbers in a mixed column its own way, and names headers its own way.

Layout (shared with csv): empty cells ("" or missing) are null and wholly empty rows are
dropped; the header is the first remaining row (names by ``headers.unique_headers``); the
used range is read (calamine drops wholly empty leading rows and columns); merged cells keep
their value in the top-left cell; hidden sheets are readable by name; the default sheet is the
first.  Error cells and formulas without a cached value are empty.

The workbook is opened by ``workbook_files.open_book``, under the reader for its vetted kind.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import python_calamine

from chatflow.failures import StepFailed
from chatflow.spreadsheets.cell_types import cell_text, cells_to_series
from chatflow.spreadsheets.headers import unique_headers
from chatflow.spreadsheets.reading_columns import read_columns
from chatflow.spreadsheets.workbook_files import (
    calamine_book,
    library_errors,
    open_book,
    pick_sheet,
    vetted_source,
)


def read_workbook(path: Path, kind: str, sheet: str | None) -> pl.DataFrame:
    """One sheet (default: the first) of a workbook of ``kind`` as a typed table: by whole
    columns (``reading_columns``) where that is provably the same, else cell by cell."""
    with vetted_source(path, kind) as (named, source):
        # xls and xlsb keep whole numbers as integer cells beside float ones, a column fastexcel's
        # strict typing refuses: trying them first would only add a parse.
        table = read_columns(source, sheet) if kind in ("xlsx", "ods") else None
        if table is not None:
            return table
        with library_errors(path, named):
            book = calamine_book(source)
    return _cells_of(path, book, sheet)


def read_workbook_cells(path: Path, kind: str, sheet: str | None) -> pl.DataFrame:
    """``read_workbook`` cell by cell only: the reference the whole-column read is held to."""
    return _cells_of(path, open_book(path, kind), sheet)


def _cells_of(
    path: Path, book: python_calamine.CalamineWorkbook, sheet: str | None
) -> pl.DataFrame:
    target = pick_sheet(book, sheet)
    with library_errors(path):
        table = _read_cells(book, target)
    if table is None:
        raise StepFailed("empty_sheet", f"Sheet '{target}' is empty.", details={"sheet": target})
    return table


def _read_cells(book: python_calamine.CalamineWorkbook, sheet: str) -> pl.DataFrame | None:
    """Every cell with its own kind, then the column rule; None for a sheet without cells."""
    rows = book.get_sheet_by_name(sheet).to_python()
    start = next((i for i, row in enumerate(rows) if any(v != "" for v in row)), None)
    if start is None:
        return None
    width = max(len(row) for row in rows)
    header = list(rows[start]) + [""] * (width - len(rows[start]))
    names = unique_headers([None if v == "" else cell_text(v) for v in header])
    body = rows[start + 1 :]
    if any(len(row) != width for row in body):
        body = [row + [""] * (width - len(row)) for row in body]
    columns = list(zip(*body, strict=True)) if body else [()] * width
    table = pl.DataFrame([cells_to_series(n, c) for n, c in zip(names, columns, strict=True)])
    return table.filter(~pl.all_horizontal(pl.all().is_null()))
