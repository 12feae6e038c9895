"""Walk the BIFF12 record stream of an xlsb part ([MS-XLSB] 2.1.4) before calamine reads it.

Each record is a type (1-2 bytes of 7 bits), a size (1-4 bytes of 7 bits) and its payload.
calamine trusts the size (it allocates it, up to 256 MB, before reading) and fills a dense
grid from the first to the last cell of a sheet, with columns unbounded; so every record must
lie inside its part, be of a sane size, and a sheet's cells must be few enough and span a
small enough rectangle.  Cell records too short for what calamine indexes are refused too.
"""

from __future__ import annotations

import math
import struct

from chatflow.failures import StepFailed
from chatflow.spreadsheets.xml_scan import check_extent
from chatflow.spreadsheets.zip_parts import GateLimits

MAX_RECORD = 4 * 1024 * 1024  # a 32,767-character rich string with every run is ~300 KB
_ROW_HEADER = 0x0000
_CELL_ISST = 0x0007
_SST_ITEM = 0x0013
# The payload calamine reads from BrtRowHdr (0x00) and each cell record (BrtCellBlank 0x01 ..
# BrtFmlaError 0x0B): a row or column number first, then the value.
_MIN_SIZE = (4, 8, 12, 9, 9, 16, 12, 12, 12, 16, 9, 9)
_U32 = struct.Struct("<I")


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
        """Check every whole record in ``buf``; returns how many bytes they took.  One loop
        with local variables: a sheet has millions of records."""
        pos, end = 0, len(buf)
        sheet = self.role == "sheet"
        cells, strings, max_ref = self.cells, self.strings, self.max_string_ref
        (low_row, high_row), (low_col, high_col) = self.rows, self.cols
        while pos + 1 < end:
            kind, size = buf[pos], buf[pos + 1]
            if kind < 0x80 and size < 0x80:  # the usual one-byte type and size
                at = pos + 2
            else:
                header = self._header(buf, pos)
                if header is None:
                    break
                kind, size, at = header
            if at + size > end:
                break
            if kind <= 0x0B and sheet:
                if size < _MIN_SIZE[kind]:
                    raise self._short("row" if kind == _ROW_HEADER else "cell")
                value = _U32.unpack_from(buf, at)[0] + 1
                if kind == _ROW_HEADER:
                    low_row, high_row = min(low_row, value), max(high_row, value)
                else:
                    cells += 1
                    low_col, high_col = min(low_col, value), max(high_col, value)
                    if kind == _CELL_ISST:
                        max_ref = max(max_ref, _U32.unpack_from(buf, at + 8)[0])
            elif kind == _SST_ITEM:
                strings += 1
            pos = at + size
        self.cells, self.strings, self.max_string_ref = cells, strings, max_ref
        self.rows, self.cols = (low_row, high_row), (low_col, high_col)
        self._count()
        return pos

    def _header(self, buf: bytes, pos: int) -> tuple[int, int, int] | None:
        """(type, size, payload start) of the record at ``pos``; None if it is cut off."""
        end = len(buf)
        kind = buf[pos]
        at = pos + 1
        if kind & 0x80:
            if at >= end:
                return None
            kind = (kind & 0x7F) | ((buf[at] & 0x7F) << 7)
            at += 1
        size = shift = 0
        for _ in range(4):
            if at >= end:
                return None
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
        return kind, size, at

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
