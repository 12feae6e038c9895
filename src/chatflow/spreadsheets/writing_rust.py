"""The default xlsx engine, on rustpy-xlsxwriter (bindings of Rust's rust_xlsxwriter).

It writes the cells ``writing_cells`` decides, like the xlsxwriter engine, so both produce
the same values, types and number formats.  A sheet whose every column holds one kind of cell
goes over as an Arrow table (the fast path); a sheet with a mixed column (say a number column
holding "nan" text) goes as a generator of row dicts, which the library types value by value
and which reports progress and can be cancelled between rows.  The Arrow path reports no
progress while the library writes, so a cancel lands only when it returns.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import polars as pl

from chatflow.spreadsheets.writing_cells import CellColumn, sheet_cells

Progress = Callable[[float], None]

PACKAGE = "rustpy_xlsxwriter"
_PREPARE_SHARE = 0.2  # of the progress range: turning the tables into cells
_PROGRESS_STEPS = 20


def unavailable() -> str | None:
    """Why this engine cannot write here (the package missing or unusable), or None."""
    try:
        module = importlib.import_module(PACKAGE)
    except ImportError as exc:
        return f"rustpy-xlsxwriter is not installed ({exc})"
    missing = [name for name in ("write_worksheets", "Format") if not hasattr(module, name)]
    if missing:
        return f"rustpy-xlsxwriter {getattr(module, '__version__', '?')} lacks {missing}"
    return None


def can_write(sheets: Mapping[str, pl.DataFrame]) -> bool:
    """False for a workbook this engine would get wrong, which then goes to xlsxwriter."""
    # The library reads per-sheet options under the key "general" as meant for every sheet,
    # so a sheet by that name would lend its number formats to the others.
    return not any(name.casefold() == "general" for name in sheets)


def write_sheets(sheets: Mapping[str, pl.DataFrame], dest: Path, progress: Progress | None) -> None:
    """Write ``sheets`` (valid, unique names; sizes checked) as an xlsx at ``dest``."""
    rp: Any = importlib.import_module(PACKAGE)
    total = max(1, sum(df.height for df in sheets.values()))
    entries: list[tuple[str, Any]] = []
    formats: dict[str, dict[str, Any]] = {}
    done = 0
    for name, df in sheets.items():
        cells = sheet_cells(df)
        sheet_formats = {
            column.name: rp.Format().set_num_format(column.num_format)
            for column in cells
            if column.num_format is not None
        }
        if sheet_formats:
            formats[name] = sheet_formats
        if any(column.mixed() for column in cells):
            offset = _PREPARE_SHARE + (1 - _PREPARE_SHARE) * done / total
            share = (1 - _PREPARE_SHARE) * df.height / total
            entries.append((name, _records(cells, df.height, offset, share, progress)))
        else:
            entries.append((name, _arrow_table(cells, df.height)))
        done += df.height
        if progress is not None:
            progress(_PREPARE_SHARE * done / total)
    rp.write_worksheets(entries, str(dest), bold_headers=True, column_formats=formats or None)


def _arrow_table(cells: list[CellColumn], height: int) -> pl.DataFrame:
    """One typed column per sheet column: floats, text or booleans (all null when empty)."""
    series = []
    for column in cells:
        only = column.only()
        empty = pl.repeat(None, height, dtype=pl.String, eager=True).alias(column.name)
        series.append(only.alias(column.name) if only is not None else empty)
    return pl.DataFrame(series)


def _records(
    cells: list[CellColumn], height: int, offset: float, share: float, progress: Progress | None
) -> Iterator[dict[str, Any]]:
    """Rows as dicts of cell values; progress (which may raise to cancel) every few rows."""
    names = [column.name for column in cells]
    step = max(1, height // _PROGRESS_STEPS)
    rows = zip(*(column.values() for column in cells), strict=True)
    for index, values in enumerate(rows, start=1):
        yield dict(zip(names, values, strict=True))
        if progress is not None and index % step == 0:
            progress(offset + share * index / height)
