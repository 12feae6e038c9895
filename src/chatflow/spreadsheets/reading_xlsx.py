"""Read one xlsx sheet into a typed table by the rule in ``cell_types``.

Cells are read with python-calamine, which gives each cell with its own kind (number, boolean,
date, time, text), so a column's type follows from its cells.  fastexcel, faster because it
types whole columns in Rust, is not used for the cells: it reads text such as "n/a", "NA",
"null" or "nan" in a numeric or date column as empty (or NaN) and so loses it.

Layout (shared with csv): empty cells ("" or missing) are null and wholly empty rows are
dropped; the header is the first remaining row (names by ``headers.unique_headers``); the
used range is read (calamine drops wholly empty leading rows and columns); merged cells keep
their value in the top-left cell; hidden sheets are readable by name; the default sheet is the
first.  Error cells and formulas without a cached value are empty.

Files are assumed to have passed ``inspection.check_xlsx_container`` in a sandbox; here only
the magic bytes are checked, so that an OLE file never reaches calamine, which aborts on some.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import fastexcel
import polars as pl
import python_calamine

from chatflow.operations.failures import StepFailed
from chatflow.spreadsheets.cell_types import cell_text, cells_to_series
from chatflow.spreadsheets.headers import unique_headers

Container = Literal["zip", "ole", "ole_encrypted", "empty", "other"]

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
# An encrypted OOXML workbook is an OLE container holding these streams (names are UTF-16LE).
_ENCRYPTION_STREAMS = tuple(s.encode("utf-16-le") for s in ("EncryptedPackage", "EncryptionInfo"))
_OLE_SCAN_LIMIT = 64 * 1024 * 1024


def sniff_container(path: Path) -> Container:
    """What the file's magic bytes say it is, without trusting its name."""
    with path.open("rb") as fh:
        head = fh.read(8)
        if not head:
            return "empty"
        if head.startswith(_ZIP_MAGICS):
            return "zip"
        if head != _OLE_MAGIC:
            return "other"
        fh.seek(0)
        return "ole_encrypted" if _contains_any(fh, _ENCRYPTION_STREAMS) else "ole"


def _contains_any(fh: io.BufferedReader, needles: tuple[bytes, ...]) -> bool:
    """Whether any needle occurs in the first _OLE_SCAN_LIMIT bytes, read in chunks."""
    overlap = max(len(n) for n in needles) - 1
    tail = b""
    read = 0
    while read < _OLE_SCAN_LIMIT:
        chunk = fh.read(1 << 20)
        if not chunk:
            return False
        read += len(chunk)
        window = tail + chunk
        if any(n in window for n in needles):
            return True
        tail = window[-overlap:]
    return False


def refuse_non_workbook(path: Path) -> None:
    """Raise StepFailed unless the file is at least a zip container (an xlsx candidate)."""
    kind = sniff_container(path)
    if kind == "zip":
        return
    if kind == "empty":
        raise StepFailed("empty_file", "The file is empty.")
    if kind == "ole_encrypted":
        raise StepFailed("password_protected", "Password-protected workbooks are not supported.")
    if kind == "ole":
        raise StepFailed(
            "legacy_or_ole_file",
            "This is a legacy Excel (.xls) or other OLE file; please save it as .xlsx.",
        )
    raise StepFailed("not_a_spreadsheet", "The file is not an .xlsx workbook.")


def open_workbook(path: Path) -> fastexcel.ExcelReader:
    refuse_non_workbook(path)
    with library_errors(path):
        return fastexcel.read_excel(path)


def read_xlsx(path: Path, sheet: str | None) -> pl.DataFrame:
    """One sheet (default: the first) as a typed table."""
    reader = open_workbook(path)
    names = list(reader.sheet_names)
    if not names:
        raise StepFailed("empty_file", "The workbook has no sheets.")
    target = names[0] if sheet is None else sheet
    if target not in names:
        raise StepFailed(
            "sheet_not_found",
            f"Sheet '{target}' not found; available sheets: {', '.join(names)}",
            details={"sheet": target, "available": names},
        )
    with library_errors(path):
        table = _read_cells(path, target)
    if table is None:
        raise StepFailed("empty_sheet", f"Sheet '{target}' is empty.", details={"sheet": target})
    return table


def _read_cells(path: Path, sheet: str) -> pl.DataFrame | None:
    """Every cell with its own kind, then the column rule; None for a sheet without cells."""
    book = python_calamine.CalamineWorkbook.from_path(str(path))
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


@contextlib.contextmanager
def library_errors(path: Path) -> Iterator[None]:
    """Turn fastexcel/calamine errors into StepFailed without leaking host paths."""
    try:
        yield
    except StepFailed:
        raise
    except Exception as exc:
        raise _library_error(exc, path) from exc
    except BaseException as exc:  # pyo3 turns a Rust panic into PanicException(BaseException)
        if type(exc).__name__ == "PanicException":
            raise _library_error(exc, path) from exc
        raise


def _library_error(exc: BaseException, path: Path) -> StepFailed:
    text = str(exc)
    if "password protected" in text.lower():
        return StepFailed("password_protected", "Password-protected workbooks are not supported.")
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    first = first.removeprefix("calamine error: ").replace(str(path), path.name)[:300]
    return StepFailed(
        "unreadable_file", f"The workbook could not be read ({first}).", details={"reason": first}
    )
