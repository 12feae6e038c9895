"""Read a workbook sheet or a csv file into a typed table, with one header policy for both.

Types follow ``cell_types``: a workbook column (xlsx, xls, xlsb or ods, ``reading_workbook``)
keeps the kind its cells share (numbers, booleans, dates, text; a column mixing kinds is text),
a csv column is typed only when every value has one reading ("01234" and "+1" stay text).
Error cells and formulas without a cached value are null; in csv an empty field is null;
whitespace is never stripped from cells.

Layout, identical for workbooks and csv:
- empty cells ("" or missing) are null, and rows in which every cell is null are dropped;
- the header is the first remaining row, every later row is data;
- header names are stripped of surrounding whitespace; a blank name becomes ``column_N`` (N is the
  1-based position in the table) and a repeated name becomes ``name_2``, ``name_3``... (see
  ``headers.unique_headers``); names are case-sensitive;
- csv rows shorter than the header are padded with nulls; a longer row is an error naming its line,
  unless every surplus field is empty (a trailing delimiter), which is dropped.

csv is split into records by polars where ``reading_csv`` proves it reads what the strict parser
``csv_text.csv_records`` reads, else by that parser.  Every library error becomes
``StepFailed`` with a stable code.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from chatflow.failures import StepFailed
from chatflow.filenames import WORKBOOK_KINDS
from chatflow.spreadsheets.headers import unique_headers as unique_headers
from chatflow.spreadsheets.reading_csv import read_csv_table
from chatflow.spreadsheets.reading_workbook import read_workbook
from chatflow.spreadsheets.workbook_files import workbook_sheet_names


def sheet_names(path: Path, kind: str) -> list[str]:
    """The workbook's sheet names in order (hidden ones included); csv has none.  ``kind`` is
    a kind of ``filenames.KINDS``, the one the inspection found, or a step's parquet."""
    if kind in ("csv", "parquet"):
        return []
    return workbook_sheet_names(path, kind)


def read_table(
    path: Path, *, kind: str, sheet: str | None = None, delimiter: str | None = None
) -> pl.DataFrame:
    """Read one sheet (default: the first) of a workbook, or a csv file, as a typed table."""
    if kind in WORKBOOK_KINDS:
        return read_workbook(path, kind, sheet)
    if kind == "csv":
        if sheet is not None:
            raise StepFailed(
                "sheet_not_found", f"Sheet '{sheet}' not found: CSV files have no sheets."
            )
        return read_csv_table(path, delimiter)
    if kind == "parquet":  # a step's parquet output, read by a later step: typed already
        if sheet is not None:
            raise StepFailed("sheet_not_found", f"Sheet '{sheet}' not found: parquet has none.")
        return pl.read_parquet(path)
    raise StepFailed("unsupported_kind", f"Unsupported file kind '{kind}'.")
