"""Builders for spreadsheet test files: real xlsx via xlsxwriter, and hand-made OOXML zips."""

from __future__ import annotations

import datetime as dt
import os
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import polars as pl
import xlsxwriter

from chatflow.spreadsheets.writing import XlsxEngine, write_workbook


def _find_hostile() -> Path:
    """The hostile corpus the project carries (tests/fixtures/hostile, 2.6 MB), or an override
    such as a newer copy of the shared folder it was taken from."""
    override = os.environ.get("CHATFLOW_HOSTILE_FIXTURES")
    return Path(override) if override else Path(__file__).parent / "fixtures" / "hostile"


HOSTILE = _find_hostile()

Rows = Sequence[Sequence[Any]]


def make_xlsx(path: Path, sheets: dict[str, Rows] | Rows) -> Path:
    """A real workbook; strings are text cells, numbers numbers, dates dates, None empty."""
    if not isinstance(sheets, dict):
        sheets = {"Sheet1": sheets}
    workbook = xlsxwriter.Workbook(str(path), {"strings_to_numbers": False})
    date_format = workbook.add_format({"num_format": "yyyy-mm-dd"})
    for name, rows in sheets.items():
        worksheet = workbook.add_worksheet(name)
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                if value is None:
                    continue
                if isinstance(value, str):
                    worksheet.write_string(r, c, value)
                elif isinstance(value, dt.date):
                    worksheet.write_datetime(r, c, value, date_format)
                else:
                    worksheet.write(r, c, value)
    workbook.close()
    return path


def make_csv(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" '
    'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    "</Types>"
)
_ROOT_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>'
)
_WORKBOOK = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    '<sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
_WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>'
)
SHEET_HEAD = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
)


def sheet_xml(cells: str, head: bytes = SHEET_HEAD) -> bytes:
    """A worksheet part whose <sheetData> holds ``cells`` (rows and cells, as XML text)."""
    return head + b"<sheetData>" + cells.encode() + b"</sheetData></worksheet>"


def make_ooxml(
    path: Path,
    sheet: bytes,
    *,
    extra: dict[str, bytes] | None = None,
    compression: int = zipfile.ZIP_DEFLATED,
) -> Path:
    """A minimal one-sheet workbook built part by part, for shapes xlsxwriter never writes."""
    with zipfile.ZipFile(path, "w", compression) as archive:
        archive.writestr("[Content_Types].xml", _CONTENT_TYPES)
        archive.writestr("_rels/.rels", _ROOT_RELS)
        archive.writestr("xl/workbook.xml", _WORKBOOK)
        archive.writestr("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS)
        archive.writestr("xl/worksheets/sheet1.xml", sheet)
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return path


# Every kind of column the reader makes, with nulls; "code" is text with leading zeros.
TYPED = pl.DataFrame(
    {
        "id": [1, 2, 3, None],
        "amount": [120.0, -80.0, 3.5, None],
        "ok": [True, False, None, True],
        "day": [dt.date(2024, 1, 31), None, dt.date(2023, 12, 1), dt.date(2024, 2, 29)],
        "at": [
            dt.datetime(2024, 1, 31, 13, 45),
            dt.datetime(2024, 1, 31, 8, 0, 1, 500000),
            None,
            dt.datetime(2024, 1, 1),
        ],
        "code": ["007", "0123", None, "42"],
    }
)
TYPED_SCHEMA = {
    "id": pl.Int64,
    "amount": pl.Float64,
    "ok": pl.Boolean,
    "day": pl.Date,
    "at": pl.Datetime("us"),
    "code": pl.String,
}


def write_table_xlsx(
    df: pl.DataFrame,
    dest: Path,
    *,
    sheet_name: str = "Sheet1",
    progress: Callable[[float], None] | None = None,
    engine: XlsxEngine = "xlsxwriter",
) -> None:
    """``df`` as a one-sheet xlsx written by the service's own writer."""
    write_workbook({sheet_name: df}, dest, progress=progress, engine=engine)
