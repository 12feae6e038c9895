"""A tiny BIFF12 writer: the ``odd_workbooks`` table as an xlsb package (LibreOffice cannot
export xlsb), plus the records a crafted one needs.

Records follow [MS-XLSB] 2.1.4: a type (1-2 bytes, 7 bits each) and a size (1-4 bytes, 7 bits
each), then the payload.  Only what calamine reads is written: a workbook with its sheet list,
shared strings, one cell format for dates (built-in format 14), and a sheet of cells.
"""

from __future__ import annotations

import datetime as dt
import struct
from pathlib import Path

from tests.spreadsheets.odd_workbooks import (
    COLUMNS,
    ROWS,
    content_types,
    relationships,
    serial,
    write_package,
)

RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/"
MAIN = "application/vnd.ms-excel.sheet.binary.macroEnabled.main"

BEGIN_BOOK, END_BOOK = 0x0083, 0x0084
WB_PROP, CALC_PROP = 0x0099, 0x009D
BEGIN_BUNDLE_SHS, BUNDLE_SH, END_BUNDLE_SHS = 0x008F, 0x009C, 0x0090
BEGIN_SST, SST_ITEM, END_SST = 0x009F, 0x0013, 0x00A0
BEGIN_STYLE_SHEET, END_STYLE_SHEET = 0x0116, 0x0117
BEGIN_CELL_XFS, XF, END_CELL_XFS = 0x0269, 0x002F, 0x026A
BEGIN_SHEET, END_SHEET, WS_DIM = 0x0081, 0x0082, 0x0094
BEGIN_SHEET_DATA, END_SHEET_DATA, ROW_HDR = 0x0091, 0x0092, 0x0000
CELL_RK, CELL_BOOL, CELL_REAL, CELL_ISST = 0x0002, 0x0004, 0x0005, 0x0007


def _varint(value: int, limit: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            break
    assert len(out) <= limit, "value too large for its field"
    return bytes(out)


def record(kind: int, payload: bytes = b"") -> bytes:
    """One BIFF12 record."""
    return _varint(kind, 2) + _varint(len(payload), 4) + payload


def wide(text: str) -> bytes:
    """An XLWideString: character count, then UTF-16LE."""
    data = text.encode("utf-16-le")
    return struct.pack("<I", len(data) // 2) + data


def workbook_bin(sheet_rel: str = "rId1", name: str = "Data", date1904: bool = False) -> bytes:
    bundle = struct.pack("<II", 0, 1) + wide(sheet_rel) + wide(name)
    return b"".join(
        [
            record(BEGIN_BOOK),
            record(WB_PROP, struct.pack("<II", int(date1904), 0) + wide("")),
            record(BEGIN_BUNDLE_SHS),
            record(BUNDLE_SH, bundle),
            record(END_BUNDLE_SHS),
            # calamine reads on after the sheet list until a record that follows defined names.
            record(CALC_PROP, struct.pack("<I", 191029) + b"\0" * 22),
            record(END_BOOK),
        ]
    )


def strings_bin(strings: list[str]) -> bytes:
    head = record(BEGIN_SST, struct.pack("<II", len(strings), len(strings)))
    items = b"".join(record(SST_ITEM, b"\0" + wide(text)) for text in strings)
    return head + items + record(END_SST)


def styles_bin() -> bytes:
    """Two cell formats: 0 General, 1 the built-in date format 14."""
    xfs = b"".join(record(XF, struct.pack("<HH", 0xFFFF, fmt) + b"\0" * 12) for fmt in (0, 14))
    return (
        record(BEGIN_STYLE_SHEET)
        + record(BEGIN_CELL_XFS, struct.pack("<I", 2))
        + xfs
        + record(END_CELL_XFS)
        + record(END_STYLE_SHEET)
    )


def _cell(col: int, style: int = 0) -> bytes:
    return struct.pack("<II", col, style)


def rk_int(value: int) -> bytes:
    """An RkNumber holding a whole number (fInt set)."""
    return struct.pack("<i", (value << 2) | 0x2)


def rk_float(value: float) -> bytes:
    """An RkNumber holding the high 30 bits of a double, as Excel stores a date serial."""
    high = struct.pack("<d", value)[4:]
    assert struct.pack("<d", value)[:4] == b"\0\0\0\0" and high[0] & 0x3 == 0
    return high


def sheet_bin(rows: list[bytes], last_row: int, last_col: int) -> bytes:
    """A sheet whose BrtSheetData holds ``rows`` (BrtRowHdr + cell records, pre-encoded)."""
    return b"".join(
        [
            record(BEGIN_SHEET),
            record(WS_DIM, struct.pack("<IIII", 0, last_row, 0, last_col)),
            record(BEGIN_SHEET_DATA),
            *rows,
            record(END_SHEET_DATA),
            record(END_SHEET),
        ]
    )


def row_header(row: int) -> bytes:
    return record(ROW_HDR, struct.pack("<II", row, 0) + b"\0" * 9)


def table_sheet(date1904: bool = False) -> bytes:
    """The odd_workbooks table: header and names as shared strings, then typed cells (dates in
    Excel's way; an RK *integer* with a date format would be read as a number by calamine)."""
    rows = [
        row_header(0)
        + b"".join(record(CELL_ISST, _cell(c) + struct.pack("<I", c)) for c in range(len(COLUMNS)))
    ]
    for n, (ident, _name, ok, when, amount) in enumerate(ROWS, start=1):
        assert isinstance(ident, int) and isinstance(when, dt.date) and isinstance(amount, float)
        date_cell = record(CELL_RK, _cell(3, 1) + rk_float(serial(when, date1904)))
        rows.append(
            row_header(n)
            + record(CELL_RK, _cell(0) + rk_int(ident))
            + record(CELL_ISST, _cell(1) + struct.pack("<I", len(COLUMNS) + n - 1))
            + record(CELL_BOOL, _cell(2) + bytes([int(bool(ok))]))
            + date_cell
            + record(CELL_REAL, _cell(4) + struct.pack("<d", amount))
        )
    return sheet_bin(rows, len(ROWS), len(COLUMNS) - 1)


def xlsb_parts(sheet: bytes, *, date1904: bool = False) -> dict[str, bytes]:
    """Every part of an xlsb package holding ``sheet`` as its one worksheet."""
    strings = [*COLUMNS, *(str(row[1]) for row in ROWS)]
    return {
        "[Content_Types].xml": content_types(
            {
                "xl/workbook.bin": MAIN,
                "xl/worksheets/sheet1.bin": "application/vnd.ms-excel.worksheet",
                "xl/sharedStrings.bin": "application/vnd.ms-excel.sharedStrings",
                "xl/styles.bin": "application/vnd.ms-excel.styles",
            },
            {"bin": MAIN},
        ).encode(),
        "_rels/.rels": relationships(
            [("rId1", RELS + "officeDocument", "xl/workbook.bin")]
        ).encode(),
        "xl/_rels/workbook.bin.rels": relationships(
            [
                ("rId1", RELS + "worksheet", "worksheets/sheet1.bin"),
                ("rId2", RELS + "sharedStrings", "sharedStrings.bin"),
                ("rId3", RELS + "styles", "styles.bin"),
            ]
        ).encode(),
        "xl/workbook.bin": workbook_bin(date1904=date1904),
        "xl/worksheets/sheet1.bin": sheet,
        "xl/sharedStrings.bin": strings_bin(strings),
        "xl/styles.bin": styles_bin(),
    }


def write_xlsb(folder: Path, name: str = "table.xlsb", *, date1904: bool = False) -> Path:
    """The table as an xlsb package."""
    return write_package(folder / name, xlsb_parts(table_sheet(date1904), date1904=date1904))
