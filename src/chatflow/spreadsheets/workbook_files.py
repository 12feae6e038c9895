"""Open a workbook file with calamine under the reader for its vetted kind.

calamine picks its reader by the file's extension, and guesses from the bytes otherwise
(trying xls, then xlsx, xlsb and ods).  A workbook is therefore always opened under a name with
its kind's extension (a symlink beside it when the file has another name, as uploads being
inspected do), so it is read by the reader for the format the gate vetted, never by a guess.
Files are assumed to have passed that gate in a sandbox; here only the magic bytes are
checked, so that an OLE file never reaches the zip readers (calamine aborts on some) nor a zip
the xls reader.  Kept free of polars: the upload inspection imports it in a fresh interpreter.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path

import python_calamine

from chatflow.failures import StepFailed
from chatflow.spreadsheets.cfb import check_encrypted_package, password_protected
from chatflow.spreadsheets.package_view import readable_source
from chatflow.spreadsheets.sniffing import sniff_container

# The extensions that make calamine use each kind's reader.
_EXTENSIONS = {"xlsx": ("xlsx", "xlsm"), "xls": ("xls",), "xlsb": ("xlsb",), "ods": ("ods",)}


def refuse_non_workbook(path: Path) -> None:
    """Raise StepFailed unless the file is at least a zip container (an xlsx, xlsb or ods
    candidate); an OLE file here is an encrypted package, a damaged file or an xls."""
    container = sniff_container(path)
    if container == "zip":
        return
    if container == "empty":
        raise StepFailed("empty_file", "The file is empty.")
    if container == "ole":
        check_encrypted_package(path)
    raise StepFailed("not_a_spreadsheet", "The file is not an .xlsx, .xlsb or .ods workbook.")


def open_book(path: Path, kind: str) -> python_calamine.CalamineWorkbook:
    """The workbook opened by the reader for ``kind``."""
    with vetted_source(path, kind) as (named, source), library_errors(path, named):
        return calamine_book(source)


@contextlib.contextmanager
def vetted_source(path: Path, kind: str) -> Iterator[tuple[Path, Path | bytes]]:
    """While open: the name the file is opened under, and what a reader opens (that name, or an
    odd package layout re-packaged in memory); the magic bytes are checked first."""
    if kind not in _EXTENSIONS:
        raise StepFailed("unsupported_kind", f"Unsupported file kind '{kind}'.")
    if kind != "xls":
        refuse_non_workbook(path)
    elif sniff_container(path) != "ole":
        raise StepFailed("not_a_spreadsheet", "The file is not an .xls workbook.")
    with _named_for(path, kind) as named:
        with library_errors(path, named):
            source = readable_source(named) if kind in ("xlsx", "xlsb") else named
        yield named, source


def calamine_book(source: Path | bytes) -> python_calamine.CalamineWorkbook:
    """python-calamine's workbook over a ``vetted_source``."""
    if isinstance(source, bytes):
        return python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(source))
    return python_calamine.CalamineWorkbook.from_path(str(source))


@contextlib.contextmanager
def _named_for(path: Path, kind: str) -> Iterator[Path]:
    """``path``, or a symlink to it with ``kind``'s extension while the workbook opens (the open
    workbook keeps its own file handle)."""
    if path.suffix[1:] in _EXTENSIONS[kind]:
        yield path
        return
    alias = alias_path(path, kind)
    alias.unlink(missing_ok=True)
    alias.symlink_to(path.name)
    try:
        yield alias
    finally:
        alias.unlink(missing_ok=True)


def alias_path(path: Path, kind: str) -> Path:
    """Where a file without ``kind``'s extension is opened from: beside it, so a reader killed
    while opening it (the inspection child can be) leaves it where the file's owner can
    remove it too."""
    return path.with_name(f"{path.name}.{kind}")


def pick_sheet(book: python_calamine.CalamineWorkbook, sheet: str | None) -> str:
    """``sheet``, or the first sheet when None; StepFailed if the workbook has no such sheet."""
    names = list(book.sheet_names)
    if not names:
        raise StepFailed("empty_file", "The workbook has no sheets.")
    target = names[0] if sheet is None else sheet
    if target not in names:
        raise StepFailed(
            "sheet_not_found",
            f"Sheet '{target}' not found; available sheets: {', '.join(names)}",
            details={"sheet": target, "available": names},
        )
    return target


def workbook_sheet_names(path: Path, kind: str) -> list[str]:
    """The workbook's sheet names in order, hidden ones included."""
    return list(open_book(path, kind).sheet_names)


@contextlib.contextmanager
def library_errors(path: Path, opened_as: Path | None = None) -> Iterator[None]:
    """Turn calamine errors into StepFailed without leaking host paths (``path``, or the name
    it was ``opened_as``)."""
    try:
        yield
    except StepFailed:
        raise
    except Exception as exc:
        raise _library_error(exc, path, opened_as or path) from exc
    except BaseException as exc:  # pyo3 turns a Rust panic into PanicException(BaseException)
        if type(exc).__name__ == "PanicException":
            raise _library_error(exc, path, opened_as or path) from exc
        raise


def _library_error(exc: BaseException, path: Path, opened_as: Path) -> StepFailed:
    text = str(exc)
    if "password protected" in text.lower():
        return password_protected()
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    first = first.removeprefix("calamine error: ")
    first = first.replace(str(opened_as), path.name).replace(str(path), path.name)[:300]
    return StepFailed(
        "unreadable_file", f"The workbook could not be read ({first}).", details={"reason": first}
    )
