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

CSV text is decoded and split into records by ``csv_text``.  Every library error becomes
``StepFailed`` with a stable code.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import polars as pl

from chatflow.failures import StepFailed
from chatflow.filenames import WORKBOOK_KINDS
from chatflow.spreadsheets.cell_types import type_text_columns
from chatflow.spreadsheets.csv_text import csv_records, open_csv
from chatflow.spreadsheets.headers import unique_headers as unique_headers
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
        return _read_csv(path, delimiter)
    if kind == "parquet":  # a step's parquet output, read by a later step: typed already
        if sheet is not None:
            raise StepFailed("sheet_not_found", f"Sheet '{sheet}' not found: parquet has none.")
        return pl.read_parquet(path)
    raise StepFailed("unsupported_kind", f"Unsupported file kind '{kind}'.")


# --- shared layout policy -----------------------------------------------------------------


def _apply_header_policy(grid: pl.DataFrame) -> pl.DataFrame | None:
    """First non-empty row -> unique header names; the rest is data.  None if there is no row."""
    if grid.width == 0:
        return None
    grid = grid.with_columns(pl.when(pl.all() != "").then(pl.all()).name.keep())
    grid = grid.filter(~pl.all_horizontal(pl.all().is_null()))
    if grid.height == 0:
        return None
    names = unique_headers(list(grid.row(0)))
    return grid.slice(1).rename(dict(zip(grid.columns, names, strict=True)))


# --- csv ----------------------------------------------------------------------------------


def _read_csv(path: Path, delimiter: str | None) -> pl.DataFrame:
    text, delimiter = open_csv(path, delimiter)
    grid = _parse_simple_csv(text, delimiter)
    if grid is None:
        records = list(csv_records(text, delimiter))
        if not records:
            raise StepFailed("empty_file", "The file has no non-empty rows.")
        columns = list(zip(*records, strict=True))
        grid = pl.DataFrame(
            [pl.Series(f"c{i}", col, dtype=pl.String) for i, col in enumerate(columns)]
        )
    table = _apply_header_policy(grid)
    if table is None:  # unreachable: records holds at least one non-empty row
        raise StepFailed("empty_file", "The file has no non-empty rows.")
    return type_text_columns(table)


# A carriage return that does not end a line: csv ends a record there, polars would not.
_LONE_CR = re.compile(r"\r(?!\n)")


def _parse_simple_csv(text: str, delimiter: str) -> pl.DataFrame | None:
    """The raw grid of a csv without quotes, NULs or lone CRs, parsed natively by polars.

    Such text has one reading, so polars (in Rust, ~20x faster) gives what ``csv_records``
    would.
    Anything else, or a row wider than the first (an error to explain with its line number),
    returns None for the strict parser.
    """
    if '"' in text or "\x00" in text or _LONE_CR.search(text):
        return None
    try:
        grid = pl.read_csv(
            io.BytesIO(text.encode("utf-8")),
            has_header=False,
            separator=delimiter,
            quote_char=None,
            infer_schema=False,
            raise_if_empty=False,
        )
    except pl.exceptions.PolarsError:
        return None
    return grid if grid.height else None
