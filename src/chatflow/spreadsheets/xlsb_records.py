"""Walk the BIFF12 record stream of an xlsb part ([MS-XLSB] 2.1.4) before calamine reads it.

Each record is a type (1-2 bytes of 7 bits), a size (1-4 bytes of 7 bits) and its payload.
calamine trusts the size (it allocates it, up to 256 MB, before reading) and fills a dense
grid from the first to the last cell of a sheet, with columns unbounded; so every record must
lie inside its part, be of a sane size, and a sheet's cells must be few enough and span a
small enough rectangle.  Cell records too short for what calamine indexes are refused too.
"""

from __future__ import annotations

import math

from chatflow.operations.failures import StepFailed
from chatflow.spreadsheets.xml_scan import check_extent
from chatflow.spreadsheets.zip_parts import GateLimits

MAX_RECORD = 4 * 1024 * 1024  # a 32,767-character rich string with every run is ~300 KB
_ROW_HEADER = 0x0000
_CELL_ISST = 0x0007
_SST_ITEM = 0x0013
# Cell records (BrtCellBlank .. BrtFmlaError) and the payload calamine reads from each.
_CELL_MIN_SIZE = {
    0x01: 8,
    0x02: 12,
    0x03: 9,
    0x04: 9,
    0x05: 16,
    0x06: 12,
    0x07: 12,
    0x08: 12,
    0x09: 16,
    0x0A: 9,
    0x0B: 9,
}


class BinScanner:
    """Streams one ``.bin`` part; ``role`` "sheet" tracks cells, "strings" counts strings."""

    def __init__(self, part: str, role: str, limits: GateLimits) -> None:
        self.part = part
        self.role = role
        self.limits = limits
        self.buffer = b""
        self.cells = 0
        self.strings = 0
        self.max_string_ref = -1
        self.rows = (math.inf, 0.0)
        self.cols = (math.inf, 0.0)

    def feed(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        used = self._walk(buffer)
        self.buffer = buffer[used:]
        if self.rows[1]:
            check_extent(self.part, self.rows, self.cols, self.limits)

    def close(self) -> None:
        if self.buffer:
            raise StepFailed(
                "unreadable_file", f"Part '{self.part}' ends inside a record (truncated)."
            )

    def _walk(self, buf: bytes) -> int:
        """Check every whole record in ``buf``; returns how many bytes they took."""
        pos, end = 0, len(buf)
        sheet = self.role == "sheet"
        while pos < end:
            kind = buf[pos]
            at = pos + 1
            if kind & 0x80:
                if at >= end:
                    break
                kind = (kind & 0x7F) | ((buf[at] & 0x7F) << 7)
                at += 1
            size = shift = 0
            for _ in range(4):
                if at >= end:
                    return pos
                byte = buf[at]
                at += 1
                size |= (byte & 0x7F) << shift
                shift += 7
                if byte < 0x80:
                    break
            if size > MAX_RECORD:
                raise StepFailed(
                    "unreadable_file",
                    f"Part '{self.part}' has a record of {size:,} bytes; that is absurd.",
                )
            if at + size > end:
                break
            if sheet and kind <= 0x0B:
                self._sheet_record(kind, buf, at, size)
            elif kind == _SST_ITEM:
                self.strings += 1
            pos = at + size
        self._count()
        return pos

    def _sheet_record(self, kind: int, buf: bytes, at: int, size: int) -> None:
        if kind == _ROW_HEADER:
            if size < 4:
                raise self._short("row")
            row = int.from_bytes(buf[at : at + 4], "little") + 1
            self.rows = (min(self.rows[0], row), max(self.rows[1], row))
            return
        if size < _CELL_MIN_SIZE[kind]:
            raise self._short("cell")
        self.cells += 1
        col = int.from_bytes(buf[at : at + 4], "little")
        self.cols = (min(self.cols[0], col + 1), max(self.cols[1], col + 1))
        if kind == _CELL_ISST:
            ref = int.from_bytes(buf[at + 8 : at + 12], "little")
            self.max_string_ref = max(self.max_string_ref, ref)

    def _count(self) -> None:
        if max(self.cells, self.strings) > self.limits.max_cells:
            raise StepFailed(
                "too_many_cells",
                f"Part '{self.part}' holds more than {self.limits.max_cells:,} cells or strings.",
            )

    def _short(self, what: str) -> StepFailed:
        return StepFailed(
            "unreadable_file", f"Part '{self.part}' has a {what} record too short to read."
        )
