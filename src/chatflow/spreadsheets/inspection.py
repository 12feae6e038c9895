"""Vet an uploaded file and describe it; meant to run in a resource-capped child (see sandbox.py).

``python -m chatflow.spreadsheets.inspection [--max-cells N] [--max-uncompressed-mb M] KIND PATH``
writes one JSON line to stdout, ``{"ok": true, "info": {...}}`` or
``{"ok": false, "code": ..., "message": ...}``, and exits 0 either way; any other exit means the
child crashed.  ``info`` is ``{"kind": ..., "sheets": [...], "columns": [...], "row_count": n}``
describing the first sheet; csv has no sheets, so ``sheets`` is ``[]``.  A workbook's ``kind``
is what its bytes are (``sniffing``), whatever its name claimed: xlsx, xls, xlsb or ods, each
through its own container gate (``check_workbook_container``).

Before calamine sees an xlsx or xlsb, ``check_ooxml_container`` maps the package (``package``:
the parts a reader parses, found through its relationships) and inflates every zip member
itself, in bounded chunks, because calamine trusts what it reads and aborts the whole process
(an uncatchable "memory allocation failed") on bombs, corner-to-corner cells or huge
shared-string counts.  The parts a reader parses get the XML checks (``xml_scan``) or, for
xlsb's binary parts, a walk of their records (``xlsb_records``); every other member is only
inflated against the byte budget.  Declared sizes, CRCs and ``<dimension ref>`` are never used
for sizing: only bytes actually inflated and elements actually seen count.
"""

from __future__ import annotations

import argparse
import json
import sys
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from chatflow.failures import StepFailed
from chatflow.filenames import WORKBOOK_KINDS
from chatflow.spreadsheets.cfb import check_xls_container
from chatflow.spreadsheets.csv_text import csv_records, open_csv
from chatflow.spreadsheets.headers import unique_headers
from chatflow.spreadsheets.opendocument import check_ods_container
from chatflow.spreadsheets.package import PackageMap, map_package
from chatflow.spreadsheets.sniffing import sniff_container, workbook_family
from chatflow.spreadsheets.workbook_files import (
    library_errors,
    open_book,
    pick_sheet,
    refuse_non_workbook,
)
from chatflow.spreadsheets.xlsb_records import BinScanner
from chatflow.spreadsheets.xml_scan import XmlScanner
from chatflow.spreadsheets.xml_scan import root_tag as root_tag
from chatflow.spreadsheets.zip_parts import (
    DEFAULT_MAX_CELLS,
    DEFAULT_MAX_UNCOMPRESSED_MB,
    Budget,
    GateLimits,
    list_members,
    member_pieces,
)

Scanner = XmlScanner | BinScanner


def inspect_file(
    path: Path, kind: str, *, limits: GateLimits | None = None, delimiter: str | None = None
) -> dict[str, Any]:
    """Kind, sheets, first-sheet columns and row count; a workbook passes its gate first."""
    limits = limits or GateLimits()
    if kind == "csv" and sniff_container(path) in ("zip", "ole"):
        kind = "xlsx"  # a workbook under a .csv name: its bytes decide, the gate finds which
    if kind == "csv":
        text, delimiter = open_csv(path, delimiter)
        columns, rows = _describe(csv_records(text, delimiter), limits)
        if columns is None:  # unreachable: the text has a non-blank character
            raise StepFailed("empty_file", "The file has no non-empty rows.")
        return {"sheets": [], "columns": columns, "row_count": rows}
    if kind not in WORKBOOK_KINDS:
        raise StepFailed("unsupported_kind", f"Unsupported file kind '{kind}'.")
    kind = check_workbook_container(path, limits)
    book = open_book(path, kind)
    sheet = pick_sheet(book, None)
    with library_errors(path):
        columns, rows = _describe(book.get_sheet_by_name(sheet).iter_rows(), limits)
    return {
        "kind": kind,
        "sheets": list(book.sheet_names),
        "columns": columns or [],  # an empty first sheet: later sheets may hold data
        "row_count": rows,
    }


def _describe(rows: Iterable[Sequence[Any]], limits: GateLimits) -> tuple[list[str] | None, int]:
    """Header names and the number of data rows, by the readers' layout rule (empty cells are
    "" or None, wholly empty rows are dropped, the first remaining row is the header), without
    typing a single cell.  The cell limit is checked as the rows go by."""
    header: Sequence[Any] | None = None
    width = count = 0
    for row in rows:
        width = max(width, len(row))
        if all(cell is None or cell == "" for cell in row):
            continue
        if header is None:
            header = row
            continue
        count += 1
        if count * width > limits.max_cells:
            _check_table_size(count, width, limits)
    _check_table_size(count, width, limits)
    if header is None:
        return None, 0
    cells = [*header, *[""] * (width - len(header))]
    return unique_headers([_header_text(cell) for cell in cells]), count


def _header_text(cell: Any) -> str | None:
    """A header cell as the typed reader names it (``cell_types.cell_text``)."""
    if cell is None or cell == "":
        return None
    if isinstance(cell, str):
        return cell
    # Numbers are rendered by polars' shortest round-trip form; only such a header pays for
    # importing polars here.
    from chatflow.spreadsheets.cell_types import cell_text

    return cell_text(cell)


def check_workbook_container(path: Path, limits: GateLimits) -> str:
    """Run the gate for what the file really is; returns that kind (xlsx, xls, xlsb or ods)."""
    family = workbook_family(path)
    if family == "xls":
        check_xls_container(path, limits.max_cells)
        return "xls"
    if family == "ods":
        check_ods_container(path, limits)
        return "ods"
    return check_ooxml_container(path, limits).kind


def _check_table_size(rows: int, columns: int, limits: GateLimits) -> None:
    if rows * columns > limits.max_cells:
        raise StepFailed(
            "too_many_cells",
            f"The file has {rows * columns:,} cells; at most {limits.max_cells:,} are supported.",
        )


# --- the OOXML container gate -------------------------------------------------------------


def check_xlsx_container(path: Path, limits: GateLimits) -> None:
    """Refuse anything but a plain, bounded xlsx (or xlsb) package; raises StepFailed."""
    check_ooxml_container(path, limits)


def check_ooxml_container(path: Path, limits: GateLimits) -> PackageMap:
    """Refuse anything but a plain, bounded OOXML package (xlsx or xlsb) and return its map;
    raises StepFailed with a stable code.  The package's own parts say which kind it is."""
    refuse_non_workbook(path)
    members = list_members(path, limits)
    with path.open("rb") as fh:
        package = map_package(fh, members, limits)
        check_parts(package)
        scan_package(fh, members, package, limits)
    return package


def check_parts(package: PackageMap) -> None:
    """Refuse by the map alone: macros (the stored file is served back as uploaded)."""
    if package.macros is not None:
        raise StepFailed(
            "macros_not_supported",
            "Macro-enabled workbooks are not supported; please save it as a plain .xlsx "
            f"(this one has '{package.macros[:100]}').",
        )


def scan_package(
    fh: BinaryIO, members: Sequence[zipfile.ZipInfo], package: PackageMap, limits: GateLimits
) -> None:
    """Inflate every member once under one budget; parsed parts get their checks."""
    roles = _roles(package)
    budget = Budget(limits)
    scanners: dict[str, Scanner] = {}
    for member in members:
        role = roles.get(member.filename)
        scanner = _scanner(member.filename, role, package.kind, limits) if role else None
        inflate_member(fh, member, budget, limits, scanner)
        if scanner is not None:
            scanners[member.filename] = scanner
    _check_workbook_root(package, scanners)
    _check_string_refs(package, scanners)


def _roles(package: PackageMap) -> dict[str, str]:
    """Zip entry name -> what a reader parses it as."""
    roles = {part.member.filename: "xml" for part in package.parsed()}
    roles.update({link.part.member.filename: "sheet" for link in package.sheets})
    if package.shared_strings is not None:
        roles[package.shared_strings.part.member.filename] = "strings"
    return roles


def _scanner(name: str, role: str, kind: str, limits: GateLimits) -> Scanner:
    """XML parts get the XML scanner wherever they are; xlsb's binary parts a record walk."""
    if kind == "xlsb" and not name.lower().endswith((".xml", ".rels")):
        return BinScanner(name, role, limits)
    return XmlScanner(name, limits)


def inflate_member(
    fh: BinaryIO,
    member: zipfile.ZipInfo,
    budget: Budget,
    limits: GateLimits,
    scanner: Scanner | None,
) -> None:
    """Inflate one member in bounded chunks, feeding them to ``scanner`` if it has one."""
    for piece in member_pieces(fh, member, budget, limits):
        if scanner is not None:
            scanner.feed(piece)
    if scanner is not None:
        scanner.close()


def _check_workbook_root(package: PackageMap, scanners: dict[str, Scanner]) -> None:
    """An xlsx workbook part must be a <workbook> (a .docx's document part is not)."""
    scanner = scanners.get(package.workbook.member.filename)
    if isinstance(scanner, XmlScanner) and scanner.root != b"workbook":
        raise StepFailed(
            "not_a_spreadsheet",
            f"The file is a zip archive but not an Excel workbook ('{package.workbook.name}' "
            "is not a workbook part).",
        )


def _check_string_refs(package: PackageMap, scanners: dict[str, Scanner]) -> None:
    """An xlsb cell naming a shared string that does not exist makes calamine panic."""
    strings = package.shared_strings
    scanner = scanners.get(strings.part.member.filename) if strings else None
    count = scanner.strings if isinstance(scanner, BinScanner) else 0
    for link in package.sheets:
        sheet = scanners.get(link.part.member.filename)
        if isinstance(sheet, BinScanner) and sheet.max_string_ref >= count:
            raise StepFailed(
                "unreadable_file",
                f"Part '{link.part.name}' refers to shared string {sheet.max_string_ref:,}; "
                f"the workbook has {count:,}.",
            )


# --- command line -------------------------------------------------------------------------


def child_main(argv: Sequence[str] | None = None) -> int:
    """Inspect one file and write the JSON verdict line; 0 unless the process is broken."""
    parser = argparse.ArgumentParser(prog="python -m chatflow.spreadsheets.inspection")
    parser.add_argument("kind", choices=sorted({*WORKBOOK_KINDS, "csv"}))
    parser.add_argument("path", type=Path)
    parser.add_argument("--max-cells", type=int, default=DEFAULT_MAX_CELLS)
    parser.add_argument("--max-uncompressed-mb", type=int, default=DEFAULT_MAX_UNCOMPRESSED_MB)
    parser.add_argument("--delimiter", default=None)
    args = parser.parse_args(argv)
    limits = GateLimits(max_cells=args.max_cells, max_uncompressed_mb=args.max_uncompressed_mb)
    verdict: dict[str, Any]
    try:
        info = inspect_file(args.path, args.kind, limits=limits, delimiter=args.delimiter)
        verdict = {"ok": True, "info": info}
    except StepFailed as exc:
        verdict = {"ok": False, "code": exc.code, "message": exc.message}
        if isinstance(exc.details, dict):
            verdict["details"] = exc.details
    except MemoryError:
        verdict = {
            "ok": False,
            "code": "file_too_complex",
            "message": "The file needs more memory to read than is allowed.",
        }
    except OSError as exc:
        verdict = {
            "ok": False,
            "code": "unreadable_file",
            "message": f"The file could not be opened ({exc.strerror}).",
        }
    sys.stdout.write(json.dumps(verdict, default=str) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(child_main())
