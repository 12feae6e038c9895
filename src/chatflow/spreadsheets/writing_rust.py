"""The default xlsx engine, on rustpy-xlsxwriter (bindings of Rust's rust_xlsxwriter).

It writes the cells ``writing_cells`` decides, like the xlsxwriter engine, so both produce
the same values, types and number formats.  A sheet whose every column holds one kind of cell
goes over as an Arrow table (the fast path); a sheet with a mixed column (say a number column
holding "nan" text) goes as a generator of row dicts, which the library types value by value
and which reports progress and can be cancelled between rows.  The Arrow path reports no
progress while the library writes, so a cancel lands only when it returns: a workbook past
``CHUNKED_ABOVE_CELLS`` is therefore written in chunks of rows, one call each, joined by
``writing_chunks``.
"""

from __future__ import annotations

import importlib
import io
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import polars as pl

from chatflow.spreadsheets.writing_cells import CellColumn, sheet_cells
from chatflow.spreadsheets.writing_chunks import ChunkedWorkbook, cell_ref

Progress = Callable[[float], None]

PACKAGE = "rustpy_xlsxwriter"
_PREPARE_SHARE = 0.2  # of the progress range: turning the tables into cells
_PROGRESS_STEPS = 20
# Past this many cells in all a workbook is written in chunks of about CHUNK_CELLS cells: one
# library call each, progress and a chance to cancel between them (docs/benchmarks.md has the
# measurements behind both numbers).  Below it one call is faster and quick enough.
CHUNKED_ABOVE_CELLS = 1_000_000
CHUNK_CELLS = 250_000
# Shares of a chunked write's work, by measurement: cells, the library's call, the join.
_PREPARE_COST = 0.05
_LIBRARY_COST = 0.65


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


def write_sheets(
    sheets: Mapping[str, pl.DataFrame],
    dest: Path,
    progress: Progress | None,
    *,
    chunk_rows: int | None = None,
) -> None:
    """Write ``sheets`` (valid, unique names; sizes checked) as an xlsx at ``dest``: in one
    library call, or in chunks of rows past ``CHUNKED_ABOVE_CELLS`` (``chunk_rows`` forces
    chunks of that many rows)."""
    rp: Any = importlib.import_module(PACKAGE)
    if chunk_rows is None and sum(df.height * df.width for df in sheets.values()) <= (
        CHUNKED_ABOVE_CELLS
    ):
        _write_whole(rp, sheets, dest, progress)
    else:
        _write_chunked(rp, sheets, dest, progress, chunk_rows)


def _write_whole(
    rp: Any, sheets: Mapping[str, pl.DataFrame], dest: Path, progress: Progress | None
) -> None:
    total = max(1, sum(df.height for df in sheets.values()))
    entries: list[tuple[str, Any]] = []
    cells_by_sheet: dict[str, list[CellColumn]] = {}
    done = 0
    for name, df in sheets.items():
        cells = cells_by_sheet[name] = sheet_cells(df)
        if any(column.mixed() for column in cells):
            offset = _PREPARE_SHARE + (1 - _PREPARE_SHARE) * done / total
            share = (1 - _PREPARE_SHARE) * df.height / total
            entries.append((name, _records(cells, df.height, offset, share, progress)))
        else:
            entries.append((name, _arrow_table(cells, df.height)))
        done += df.height
        if progress is not None:
            progress(_PREPARE_SHARE * done / total)
    _library_write(rp, entries, dest, _formats(rp, cells_by_sheet), {})


def _write_chunked(
    rp: Any,
    sheets: Mapping[str, pl.DataFrame],
    dest: Path,
    progress: Progress | None,
    chunk_rows: int | None,
) -> None:
    """Each sheet in chunks of rows, each one library call into memory that
    ``ChunkedWorkbook`` joins; progress (which may raise to cancel) after every step.

    The library releases the GIL, and so does zlib: a thread writes the next chunk while this
    one joins the last, so on two free CPUs the join costs little wall time.
    """
    work = _Work(progress, sum(_weight(*df.shape) for df in sheets.values()))
    cells_by_sheet: dict[str, list[CellColumn]] = {}
    for name, df in sheets.items():
        cells_by_sheet[name] = sheet_cells(df, work.part(_PREPARE_COST * _weight(*df.shape)))
    chunks = _plan(cells_by_sheet, {name: df.height for name, df in sheets.items()}, chunk_rows)
    formats = _formats(rp, cells_by_sheet)
    empty = {
        name: _arrow_table([c.slice(0, 0) for c in cells], 0)
        for name, cells in cells_by_sheet.items()
    }

    def write(chunk: _Chunk) -> io.BytesIO:
        entries: list[tuple[str, Any]] = [(other, empty[other]) for other in cells_by_sheet]
        part = [column.slice(chunk.start, chunk.height) for column in cells_by_sheet[chunk.name]]
        data = (
            _records(part, chunk.height, 0.0, 0.0, None)
            if chunk.records
            else _arrow_table(part, chunk.height)
        )
        entries[chunk.sheet] = (chunk.name, data)
        buffer = io.BytesIO()
        _library_write(rp, entries, buffer, formats, {chunk.name: chunk.start})
        return buffer

    _write_ahead(chunks, write, ChunkedWorkbook(dest), work)


def _write_ahead(
    chunks: list[_Chunk],
    write: Callable[[_Chunk], io.BytesIO],
    book: ChunkedWorkbook,
    work: _Work,
) -> None:
    """Join the chunks in order while a thread writes the next one."""
    ahead = ThreadPoolExecutor(1, thread_name_prefix="xlsx-chunk")
    try:
        pending = ahead.submit(write, chunks[0])
        for index, chunk in enumerate(chunks):
            buffer = pending.result()
            if index + 1 < len(chunks):
                pending = ahead.submit(write, chunks[index + 1])
            work.done(_LIBRARY_COST * chunk.cost)
            book.add(
                buffer,
                chunk.sheet,
                header_row=chunk.start,
                last=chunk.last,
                dimension=chunk.dimension,
                chunks=chunk.count,
            )
            work.done((1 - _PREPARE_COST - _LIBRARY_COST) * chunk.cost)
        book.close()
    except BaseException:
        book.abort()
        raise
    finally:
        # A stop does not wait for the chunk being written: it only fills a buffer nobody
        # reads, and the call cannot be interrupted.
        ahead.shutdown(wait=False, cancel_futures=True)


@dataclass(frozen=True)
class _Chunk:
    """Rows ``start`` to ``start + height`` of the ``sheet``-th sheet, one of ``count``."""

    sheet: int
    name: str
    start: int  # also the sheet row of the chunk's header: its first data row is below it
    height: int
    cost: int
    last: bool
    count: int
    dimension: str  # the whole sheet's range
    # As the whole sheet goes in one call (the paths differ in details, e.g. a column named
    # "": a blank header cell from records, "column_N" from Arrow).
    records: bool


def _plan(
    cells_by_sheet: Mapping[str, list[CellColumn]],
    heights: Mapping[str, int],
    chunk_rows: int | None,
) -> list[_Chunk]:
    """Every sheet's chunks, in order (an empty sheet is one chunk)."""
    chunks = []
    for sheet, (name, cells) in enumerate(cells_by_sheet.items()):
        height, width = heights[name], len(cells)
        rows = chunk_rows or max(1, CHUNK_CELLS // max(1, width))
        starts = range(0, max(1, height), rows)
        last_cell = cell_ref(_last_written_row(cells), max(0, width - 1))
        dimension = "A1" if last_cell == "A1" else f"A1:{last_cell}"
        records = any(column.mixed() for column in cells)
        for start in starts:
            part = min(rows, height - start) if height else 0
            last = start + rows >= height
            cost = _weight(part, width)
            chunks.append(
                _Chunk(sheet, name, start, part, cost, last, len(starts), dimension, records)
            )
    return chunks


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


def _formats(rp: Any, cells_by_sheet: Mapping[str, list[CellColumn]]) -> dict[str, Any]:
    """Per sheet, the library's format for each column that has a number format."""
    formats: dict[str, Any] = {}
    for name, cells in cells_by_sheet.items():
        sheet_formats = {
            column.name: rp.Format().set_num_format(column.num_format)
            for column in cells
            if column.num_format is not None
        }
        if sheet_formats:
            formats[name] = sheet_formats
    return formats


def _library_write(
    rp: Any,
    entries: list[tuple[str, Any]],
    target: Path | BinaryIO,
    formats: dict[str, Any],
    header_rows: dict[str, int],
) -> None:
    rp.write_worksheets(
        entries,
        target if not isinstance(target, Path) else str(target),
        bold_headers=True,
        column_formats=formats or None,
        header_row=header_rows or None,
    )


def _last_written_row(cells: list[CellColumn]) -> int:
    """The 0-based sheet row of the last row the library writes a cell on (0: the header);
    it writes no cell for null or empty text."""
    last = 0
    for column in cells:
        for kind in column.kinds():
            written = kind.is_not_null()
            if kind.dtype == pl.String:
                written = written & (kind != "").fill_null(False)
            rows = written.arg_true()
            if rows.len():
                last = max(last, int(rows[-1]) + 1)
    return last


def _weight(height: int, width: int) -> int:
    """The work of writing a sheet, in cells (an empty sheet still costs a call)."""
    return max(1, height * width)


class _Work:
    """Progress as the fraction of the weighted work done so far."""

    def __init__(self, progress: Progress | None, total: int) -> None:
        self._progress = progress
        self._total = max(1, total)
        self._done = 0.0

    def done(self, amount: float) -> None:
        self._done += amount
        if self._progress is not None:
            self._progress(min(1.0, self._done / self._total))

    def part(self, amount: float) -> Progress:
        """A progress callback for a step worth ``amount``, reporting its fractions."""
        start = self._done

        def report(fraction: float) -> None:
            self._done = start + amount * fraction
            if self._progress is not None:
                self._progress(min(1.0, self._done / self._total))

        return report
