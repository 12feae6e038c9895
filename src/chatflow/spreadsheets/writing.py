"""Write a table to xlsx or csv atomically, so a reader never sees a half-written file.

Both writers render into ``.<name>.<random>.part`` beside the destination, fsync it and
``os.replace`` it over the real name; on any error (including a progress callback raising
Cancelled) the temp file is removed.  xlsx text is always written as an inert text cell, never a
formula, number or link; csv output escapes formula-like text with a leading apostrophe.
"""

from __future__ import annotations

import codecs
import contextlib
import datetime as dt
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import xlsxwriter
from xlsxwriter.worksheet import Worksheet

from chatflow.operations.registry import StepFailed

Progress = Callable[[float], None]

XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
EXCEL_MAX_ROWS = 1_048_576
EXCEL_MAX_COLS = 16_384
_SHEET_NAME_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")
# Excel keeps 15 significant digits; a larger integer is written as text to stay exact.
_MAX_EXACT_INT = 2**53
# Text an importing spreadsheet could run as a formula (ASCII and fullwidth forms)...
_FORMULA_START = r"^[=+\-@\t\r\uff1d\uff0b\uff0d\uff20]"
# ...unless it is plainly a number such as "-14" or "+1.5e3".
_PLAIN_NUMBER = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"
_PROGRESS_STEPS = 20


def media_type_for(kind: str) -> str:
    """The Content-Type for an output of ``kind`` ("xlsx" or "csv")."""
    return {"xlsx": XLSX_MEDIA_TYPE, "csv": CSV_MEDIA_TYPE}[kind]


def excel_sheet_name(name: str) -> str:
    """``name`` made valid for Excel: no []:*?/\\, no edge apostrophes, 1-31 characters."""
    cleaned = _SHEET_NAME_FORBIDDEN.sub("_", name).strip("'")[:31].strip("'")
    if not cleaned.strip():
        return "Sheet1"
    return "History_" if cleaned.lower() == "history" else cleaned  # "History" is reserved


@contextlib.contextmanager
def atomic_destination(dest: Path) -> Iterator[Path]:
    """Yield a temp path beside ``dest``; on success fsync it and rename it onto ``dest``."""
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_directory(dest.parent)


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (not supported everywhere, hence best effort)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_xlsx(
    df: pl.DataFrame,
    dest: Path,
    *,
    sheet_name: str = "Sheet1",
    progress: Progress | None = None,
) -> None:
    """Write ``df`` as a one-sheet xlsx with a bold header row; ``progress`` gets 0..1."""
    write_workbook({sheet_name: df}, dest, progress=progress)


def write_workbook(
    sheets: Mapping[str, pl.DataFrame], dest: Path, *, progress: Progress | None = None
) -> None:
    """Write each table as a sheet (names made Excel-valid and unique), atomically."""
    if not sheets:
        raise StepFailed("nothing_to_write", "A workbook needs at least one sheet.")
    for df in sheets.values():
        if df.height + 1 > EXCEL_MAX_ROWS:
            raise StepFailed(
                "too_many_rows",
                f"{df.height} rows do not fit in an Excel sheet (at most {EXCEL_MAX_ROWS - 1}).",
            )
        if df.width > EXCEL_MAX_COLS:
            raise StepFailed(
                "too_many_columns",
                f"{df.width} columns do not fit in an Excel sheet (at most {EXCEL_MAX_COLS}).",
            )
    names: list[str] = []
    for raw in sheets:
        name = base = excel_sheet_name(raw)
        n = 1
        while name.casefold() in (taken.casefold() for taken in names):
            n += 1
            name = f"{base[: 31 - len(str(n)) - 1]}_{n}"
        names.append(name)
    total_rows = max(1, sum(df.height for df in sheets.values()))
    # xlsxwriter keeps row data in a temp file it removes only in close(); a private scratch
    # directory makes sure an aborted or cancelled write leaves nothing behind.
    with (
        atomic_destination(dest) as tmp,
        tempfile.TemporaryDirectory(prefix="chatflow-xlsx-") as scratch,
    ):
        workbook = xlsxwriter.Workbook(
            str(tmp),
            {
                "constant_memory": True,
                "strings_to_numbers": False,
                "strings_to_formulas": False,
                "strings_to_urls": False,
                "remove_timezone": True,
                "tmpdir": scratch,
            },
        )
        done = 0
        for name, df in zip(names, sheets.values(), strict=True):
            offset, share = done / total_rows, df.height / total_rows

            def scaled(fraction: float, offset: float = offset, share: float = share) -> None:
                if progress is not None:
                    progress(offset + fraction * share)

            _fill_sheet(workbook, df, name, scaled)
            done += df.height
        workbook.close()
    if progress is not None:
        progress(1.0)


def _fill_sheet(
    workbook: xlsxwriter.Workbook, df: pl.DataFrame, sheet: str, progress: Progress | None
) -> None:
    worksheet = workbook.add_worksheet(sheet)
    bold = workbook.add_format({"bold": True})
    formats = {
        "date": workbook.add_format({"num_format": "yyyy-mm-dd"}),
        "datetime": workbook.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"}),
        "time": workbook.add_format({"num_format": "hh:mm:ss"}),
    }
    for col, name in enumerate(df.columns):
        worksheet.write_string(0, col, name, bold)
    writers = [_cell_writer(worksheet, dtype, formats) for dtype in df.dtypes]
    columns = [series.to_list() for series in df.iter_columns()]
    step = max(1, df.height // _PROGRESS_STEPS)
    total = max(1, df.height)
    for row, values in enumerate(zip(*columns, strict=True), start=1):
        for col, value in enumerate(values):
            if value is not None and writers[col](row, col, value):
                raise StepFailed(
                    "value_too_long",
                    f"Row {row}, column '{df.columns[col]}': the text is longer than the "
                    "32,767 characters an Excel cell can hold.",
                )
        if progress is not None and row % step == 0:
            progress(row / total)


def _cell_writer(
    ws: Worksheet, dtype: pl.DataType, formats: dict[str, Any]
) -> Callable[[int, int, Any], int]:
    """A function writing one non-null value of ``dtype``; non-zero return = truncated text."""
    if dtype == pl.String or isinstance(dtype, pl.Categorical | pl.Enum):
        return ws.write_string
    if dtype == pl.Boolean:
        return ws.write_boolean
    if dtype.is_integer():
        return lambda r, c, v: (
            ws.write_number(r, c, v) if abs(v) < _MAX_EXACT_INT else ws.write_string(r, c, str(v))
        )
    if dtype.is_float():
        return lambda r, c, v: (
            ws.write_number(r, c, v) if math.isfinite(v) else ws.write_string(r, c, str(v))
        )
    if isinstance(dtype, pl.Decimal):
        return lambda r, c, v: _write_decimal(ws, r, c, v)
    if dtype == pl.Date:
        return lambda r, c, v: _write_temporal(ws, r, c, v, formats["date"])
    if isinstance(dtype, pl.Datetime):
        return lambda r, c, v: _write_temporal(ws, r, c, v, formats["datetime"])
    if dtype == pl.Time:
        return lambda r, c, v: ws.write_datetime(r, c, v, formats["time"])
    return lambda r, c, v: ws.write_string(r, c, str(v))  # durations, lists, structs, binary


def _write_decimal(ws: Worksheet, row: int, col: int, value: Decimal) -> int:
    """As a number when a double holds it exactly enough (15 digits), else as text."""
    if value.is_finite() and len(value.as_tuple().digits) <= 15:
        return ws.write_number(row, col, float(value))
    return ws.write_string(row, col, str(value))


def _write_temporal(ws: Worksheet, row: int, col: int, value: dt.date, fmt: Any) -> int:
    """As an Excel date, except before 1900 where Excel has no dates: then ISO text."""
    if value.year < 1900:
        return ws.write_string(row, col, value.isoformat())
    return ws.write_datetime(row, col, value, fmt)


def write_csv(
    df: pl.DataFrame,
    dest: Path,
    *,
    delimiter: str = ",",
    escape_formulas: bool = True,
    encoding: str = "utf-8",
    progress: Progress | None = None,
) -> None:
    """Write ``df`` as csv (UTF-8 without BOM unless ``encoding`` says otherwise);
    formula-like text gets a leading apostrophe."""
    df = _as_csv_types(df)
    if escape_formulas:
        df = escape_formula_text(df)
    step = max(1, df.height // _PROGRESS_STEPS)
    codec = _csv_codec(encoding)
    with atomic_destination(dest) as tmp, tmp.open("wb") as fh:
        if codec == "utf-8-sig":
            fh.write(b"\xef\xbb\xbf")
        # In slices, so a long write reports progress and can be cancelled between them.
        for start in range(0, max(df.height, 1), step):
            chunk = df.slice(start, step).write_csv(separator=delimiter, include_header=start == 0)
            fh.write(_encode(chunk, codec, start))
            if progress is not None and df.height:
                progress(min(start + step, df.height) / df.height)
    if progress is not None:
        progress(1.0)


def _csv_codec(encoding: str) -> str:
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise StepFailed("unknown_encoding", f"Unknown text encoding {encoding!r}.") from None
    return "utf-8" if name == "utf-8" else name


def _encode(text: str, codec: str, first_row: int) -> bytes:
    if codec in ("utf-8", "utf-8-sig"):
        return text.encode("utf-8")
    try:
        return text.encode(codec)
    except UnicodeEncodeError as exc:
        raise StepFailed(
            "unencodable_text",
            f"Text near row {first_row + 1} cannot be written in {codec}: "
            f"{exc.object[exc.start : exc.end]!r}; use utf-8.",
        ) from None


def write_parquet(df: pl.DataFrame, dest: Path, *, progress: Progress | None = None) -> None:
    """Write ``df`` as parquet (zstd), atomically."""
    with atomic_destination(dest) as tmp:
        df.write_parquet(tmp, compression="zstd")
    if progress is not None:
        progress(1.0)


def _as_csv_types(df: pl.DataFrame) -> pl.DataFrame:
    """Categoricals as plain text; types polars cannot put in csv as str() of each value."""
    replaced: list[pl.Series] = []
    for name, dtype in df.schema.items():
        if isinstance(dtype, pl.Categorical | pl.Enum):
            replaced.append(df[name].cast(pl.String))
        elif isinstance(dtype, pl.Duration | pl.List | pl.Array | pl.Struct | pl.Object) or (
            dtype == pl.Binary
        ):
            # The same rendering as the xlsx writer's fallback, so both outputs agree.
            values = [None if v is None else str(v) for v in df[name].to_list()]
            replaced.append(pl.Series(name, values, dtype=pl.String))
    return df.with_columns(replaced) if replaced else df


def escape_formula_text(df: pl.DataFrame) -> pl.DataFrame:
    """Prefix ' to text starting with = + - @ tab CR (or fullwidth =+-@) unless it is a number."""
    text_columns = [name for name, dtype in df.schema.items() if dtype == pl.String]
    return df.with_columns(_escaped(pl.col(name)).alias(name) for name in text_columns)


def _escaped(col: pl.Expr) -> pl.Expr:
    risky = col.str.contains(_FORMULA_START) & ~col.str.contains(_PLAIN_NUMBER)
    return pl.when(risky).then(pl.lit("'") + col).otherwise(col)
