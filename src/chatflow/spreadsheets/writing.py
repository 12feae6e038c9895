"""Write a table to xlsx or csv atomically, so a reader never sees a half-written file.

Both writers render into ``.<name>.<random>.part`` beside the destination, fsync it and
``os.replace`` it over the real name; on any error (including a progress callback raising
Cancelled) the temp file is removed.  xlsx text, header cells included, is always written as
an inert text cell, never a formula, number or link; csv output puts a leading apostrophe on
header and text cells a spreadsheet program could evaluate (``escape_formula_text``'s rule).

xlsx has two engines behind ``write_workbook(..., engine=...)``: rustpy-xlsxwriter (the
default, ``writing_rust``; docs/adr/0001-default-xlsx-engine.md says why) and xlsxwriter, both
writing the cells that ``writing_cells`` decides.  Where rustpy-xlsxwriter cannot be imported,
or cannot write a workbook right (``writing_rust.can_write``), xlsxwriter writes it instead.
"""

from __future__ import annotations

import codecs
import contextlib
import functools
import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final, Literal

import polars as pl
import xlsxwriter
from xlsxwriter.worksheet import Worksheet

from chatflow.failures import StepFailed
from chatflow.spreadsheets.cell_types import datetime_format, number_text
from chatflow.spreadsheets.writing_cells import CellColumn, sheet_cells

Progress = Callable[[float], None]
log = logging.getLogger(__name__)

EXCEL_MAX_ROWS = 1_048_576
EXCEL_MAX_COLS = 16_384
_SHEET_NAME_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")
RUST_ENGINE: Final = "rustpy-xlsxwriter"
XlsxEngine = Literal["xlsxwriter", "rustpy-xlsxwriter"]
XLSX_ENGINES: tuple[str, ...] = ("xlsxwriter", RUST_ENGINE)
DEFAULT_XLSX_ENGINE: Final = RUST_ENGINE
# The csv escaping rule (escape_formula_text states it).  polars runs these with Rust's regex
# engine, which is linear in the text's length whatever the pattern.
_ALWAYS_FORMULA = r"^ *[=@\t\r\n\uff1d\uff20]"
_SIGNED = r"^ *[+\-\uff0b\uff0d]"
_CURRENCY = "[$\u00a2\u00a3\u00a5\u20ac]"
_DIGITS = (
    r"(?:[0-9]+(?:[.,][0-9]*)?"  # 5  1,5  -1.
    r"|[0-9]{1,3}(?:[,. \u00a0\u202f][0-9]{3})+(?:[.,][0-9]+)?"  # 1,234.56  1.234,56  1 234,5
    r"|[.,][0-9]+)"  # .5  ,5
)
_SIGNED_NUMBER = (
    rf"^ *[+-](?:{_CURRENCY} ?)?{_DIGITS}(?:[eE][+-]?[0-9]+)?(?: ?(?:%|{_CURRENCY}))? *$"
)
_PHONE_NUMBER = r"^ *\+[0-9]{1,4}(?: (?:\([0-9]{1,6}\)[0-9]*|[0-9]+))+ *$"
_PROGRESS_STEPS = 20


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


def check_xlsx_engine(name: str) -> XlsxEngine:
    """The engine that will write for setting ``name``: ``name`` itself, or xlsxwriter, with a
    warning, when ``name`` is rustpy-xlsxwriter and it cannot be imported.  RuntimeError for
    an unknown name."""
    if name == "xlsxwriter":
        return "xlsxwriter"
    if name != RUST_ENGINE:
        raise RuntimeError(
            f"Unknown xlsx writer {name!r} (CHATFLOW_XLSX_WRITER); "
            f"use one of {', '.join(XLSX_ENGINES)}."
        )
    from chatflow.spreadsheets import writing_rust

    problem = writing_rust.unavailable()
    if problem:
        log.warning(
            "CHATFLOW_XLSX_WRITER=%s but %s: xlsx outputs are written with xlsxwriter "
            "(the same cells, several times slower). Reinstall chatflow to get it back, or "
            "set CHATFLOW_XLSX_WRITER=xlsxwriter.",
            name,
            problem,
        )
        return "xlsxwriter"
    return RUST_ENGINE


@functools.cache
def _rust_importable() -> bool:
    """Asked once per process: each worker process decides for itself, as its server did."""
    from chatflow.spreadsheets import writing_rust

    return writing_rust.unavailable() is None


def write_workbook(
    sheets: Mapping[str, pl.DataFrame],
    dest: Path,
    *,
    progress: Progress | None = None,
    engine: XlsxEngine = DEFAULT_XLSX_ENGINE,
    chunk_rows: int | None = None,
) -> None:
    """Write each table as a sheet (names made Excel-valid and unique), atomically;
    ``chunk_rows`` forces the Rust engine's chunked write (for tests and measurements)."""
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
    named = dict(zip(names, sheets.values(), strict=True))
    if engine == RUST_ENGINE:
        from chatflow.spreadsheets import writing_rust

        if _rust_importable() and writing_rust.can_write(named):
            with atomic_destination(dest) as tmp:
                writing_rust.write_sheets(named, tmp, progress, chunk_rows=chunk_rows)
                if progress is not None:
                    progress(1.0)  # before the rename: a cancel here leaves no file behind
            return
    elif engine != "xlsxwriter":
        raise ValueError(f"unknown xlsx engine {engine!r}")
    _write_with_xlsxwriter(named, dest, progress)


def _write_with_xlsxwriter(
    sheets: dict[str, pl.DataFrame], dest: Path, progress: Progress | None
) -> None:
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
        for name, df in sheets.items():
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
    cells = sheet_cells(df)
    worksheet = workbook.add_worksheet(sheet)
    bold = workbook.add_format({"bold": True})
    formats: dict[str, Any] = {}
    for col, column in enumerate(cells):
        worksheet.write_string(0, col, column.name, bold)
        if column.num_format is not None and column.num_format not in formats:
            formats[column.num_format] = workbook.add_format({"num_format": column.num_format})
    writers = [_cell_writer(worksheet, column, formats) for column in cells]
    columns = [column.values() for column in cells]
    step = max(1, df.height // _PROGRESS_STEPS)
    total = max(1, df.height)
    for row, values in enumerate(zip(*columns, strict=True), start=1):
        for col, value in enumerate(values):
            if value is not None:
                writers[col](row, col, value)
        if progress is not None and row % step == 0:
            progress(row / total)


def _cell_writer(
    ws: Worksheet, column: CellColumn, formats: dict[str, Any]
) -> Callable[[int, int, Any], object]:
    """A function writing one non-null cell of ``column`` (a float, str or bool)."""
    fmt = formats.get(column.num_format) if column.num_format is not None else None
    only = column.only()
    if only is not None and only.dtype == pl.String and fmt is None:
        return ws.write_string  # the common case, without a wrapper call per cell
    if only is not None and only.dtype == pl.Float64:
        return lambda r, c, v: ws.write_number(r, c, v, fmt)
    by_type = {str: ws.write_string, float: ws.write_number, bool: ws.write_boolean}
    return lambda r, c, v: by_type[type(v)](r, c, v, fmt)


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
    header = list(df.columns)
    if escape_formulas:
        df = escape_formula_text(df)
        header = escape_header(header)
    step = max(1, df.height // _PROGRESS_STEPS)
    codec = _csv_codec(encoding)
    with atomic_destination(dest) as tmp, tmp.open("wb") as fh:
        if codec == "utf-8-sig":
            fh.write(b"\xef\xbb\xbf")
        fh.write(_encode(_header_line(header, delimiter), codec, "the header"))
        # In slices, so a long write reports progress and can be cancelled between them.
        for start in range(0, df.height, step):
            chunk = df.slice(start, step).write_csv(separator=delimiter, include_header=False)
            fh.write(_encode(chunk, codec, f"near row {start + 1}"))
            if progress is not None and df.height:
                progress(min(start + step, df.height) / df.height)
    if progress is not None:
        progress(1.0)


def _header_line(names: list[str], delimiter: str) -> str:
    """The header as a csv line, quoted by polars exactly as it quotes cells."""
    if not names:
        return "\n"
    row = pl.DataFrame([pl.Series(f"c{i}", [name], pl.String) for i, name in enumerate(names)])
    return row.write_csv(separator=delimiter, include_header=False)


def _csv_codec(encoding: str) -> str:
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise StepFailed("unknown_encoding", f"Unknown text encoding {encoding!r}.") from None
    return "utf-8" if name == "utf-8" else name


def _encode(text: str, codec: str, where: str) -> bytes:
    if codec in ("utf-8", "utf-8-sig"):
        return text.encode("utf-8")
    try:
        return text.encode(codec)
    except UnicodeEncodeError as exc:
        raise StepFailed(
            "unencodable_text",
            f"Text {where} cannot be written in {codec}: "
            f"{exc.object[exc.start : exc.end]!r}; use utf-8.",
        ) from None


def write_parquet(df: pl.DataFrame, dest: Path, *, progress: Progress | None = None) -> None:
    """Write ``df`` as parquet (zstd), atomically."""
    with atomic_destination(dest) as tmp:
        df.write_parquet(tmp, compression="zstd")
    if progress is not None:
        progress(1.0)


def _as_csv_types(df: pl.DataFrame) -> pl.DataFrame:
    """Every column as the text csv holds (``cell_types``): floats in shortest round-trip form
    without ".0", datetimes "YYYY-MM-DD HH:MM:SS[.ffffff]"; other types' str() of each value."""
    replaced: list[pl.Series | pl.Expr] = []
    for name, dtype in df.schema.items():
        if dtype.is_float():
            replaced.append(number_text(pl.col(name)))
        elif isinstance(dtype, pl.Datetime):
            replaced.append(pl.col(name).dt.to_string(datetime_format(df[name])))
        elif isinstance(dtype, pl.Categorical | pl.Enum):
            replaced.append(df[name].cast(pl.String))
        elif isinstance(dtype, pl.Duration | pl.List | pl.Array | pl.Struct | pl.Object) or (
            dtype == pl.Binary
        ):
            # The same rendering as the xlsx writer's fallback, so both outputs agree.
            values = [None if v is None else str(v) for v in df[name].to_list()]
            replaced.append(pl.Series(name, values, dtype=pl.String))
    return df.with_columns(replaced) if replaced else df


def escape_formula_text(df: pl.DataFrame) -> pl.DataFrame:
    """Prefix ' to each text cell a spreadsheet program could evaluate as a formula.

    After any leading spaces, a cell is escaped when it starts with ``=``, ``@``, tab, CR or LF
    (or fullwidth ＝ ＠), always; or with ``+``, ``-`` (or fullwidth ＋ －) unless the whole
    cell is one of:
    - a signed number: ASCII ``+``/``-``, an optional currency sign ($ ¢ £ ¥ €), then digits
      with an optional decimal part after ``.`` or ``,`` (or digits grouped in threes by
      ``,`` ``.`` space or (narrow) no-break space, then that decimal part), or only the
      decimal part; an optional exponent ``e``/``E``[sign]digits; an optional ``%`` or
      currency sign, one space allowed before it: ``-14``, ``-1,5``, ``+1.5e3``,
      ``-1.234,56``, ``-5%``, ``-5 €``;
    - a phone number: ``+``, 1-4 digits, then groups each after one space, a group being
      digits or ``(digits)`` with digits after it: ``+49 30 1234567``, ``+44 (0)20 7946 0958``.
    Neither can call a function or reference a cell: they hold no letter but an exponent's.
    Anything else after a sign is escaped, arithmetic included (``+1-555-0100``, ``-2+3``,
    ``-1/2``): Excel would compute it.  Leading spaces count as nothing because some importers
    trim them.  Other columns (numbers, dates, booleans) are never changed.
    """
    text_columns = [name for name, dtype in df.schema.items() if dtype == pl.String]
    return df.with_columns(_escaped(pl.col(name)).alias(name) for name in text_columns)


def escape_header(names: list[str]) -> list[str]:
    """Column names escaped by ``escape_formula_text``'s rule, as header cells are written."""
    header = pl.DataFrame({"name": pl.Series(names, dtype=pl.String)})
    return escape_formula_text(header).get_column("name").to_list()


def _escaped(col: pl.Expr) -> pl.Expr:
    signed = col.str.contains(_SIGNED) & ~(
        col.str.contains(_SIGNED_NUMBER) | col.str.contains(_PHONE_NUMBER)
    )
    risky = col.str.contains(_ALWAYS_FORMULA) | signed
    return pl.when(risky).then(pl.lit("'") + col).otherwise(col)
