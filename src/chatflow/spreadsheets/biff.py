"""The record walk of an xls workbook stream (BIFF8, and BIFF5's "Book") before calamine reads it.

calamine reads every sheet of an xls as soon as it opens the file (not one sheet on demand, as
with xlsx) and keeps them all.  It sizes each sheet from its records: a DIMENSIONS record makes
it reserve room for the rows x columns it claims, and the sheet becomes a grid from its lowest
to its highest cell.  Two cells in opposite corners (rows and columns are 16-bit in cell
records), a DIMENSIONS record claiming 4 billion rows, or one BoundSheet record repeated
thousands of times over the same sheet would make it allocate gigabytes.  So the walk follows
calamine's own reading (records merged with their CONTINUE records are skipped whole, nested
substreams such as embedded charts are skipped, a sheet ends at its EOF record) and counts:

- per sheet, the cells its DIMENSIONS record claims, at most ``max_cells``;
- per sheet, the larger of its cell records' count and their extent (rows x columns), summed
  over every BoundSheet record that points at it: at most ``max_cells`` for the workbook.

Only counts are gathered; values are calamine's business.  A FILEPASS record in the globals
means the workbook is encrypted (XOR obfuscation included, which calamine would read as
garbage).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from chatflow.failures import StepFailed

_RECORD = struct.Struct("<HH")
_BOF = 0x0809
_EOF = 0x000A
_FILEPASS = 0x002F
_BOUNDSHEET = 0x0085
_DIMENSIONS = 0x0200
_MULRK = 0x00BD
_FORMULA = 0x0006  # a cell, and a formula calamine keeps in a grid of its own
_STRING = 0x0207  # the text result of the formula before it: one more cell
# Number, Label, RString, BoolErr, RK, LabelSst: one cell each.
_CELLS = frozenset({0x0203, 0x0204, 0x00D6, 0x0205, 0x027E, 0x00FD})


@dataclass(frozen=True)
class Globals:
    """What the workbook globals say: where each sheet starts, and whether it is encrypted."""

    sheet_offsets: list[int]
    encrypted: bool


def read_globals(stream: bytes) -> Globals:
    """The globals substream's BoundSheet offsets and FILEPASS, up to its EOF record."""
    offsets: list[int] = []
    encrypted = False
    for typ, start, end in _records(stream, 0):
        if typ == _FILEPASS:
            encrypted = True
        elif typ == _BOUNDSHEET and end - start >= 4:
            offsets.append(int.from_bytes(stream[start : start + 4], "little"))
        elif typ == _EOF:
            break
    return Globals(offsets, encrypted)


def check_sheets(stream: bytes, offsets: list[int], max_cells: int) -> None:
    """Refuse, with ``too_many_cells``, sheets calamine would size beyond ``max_cells``."""
    weights: dict[int, int] = {}
    total = 0
    for offset in offsets:
        if offset > len(stream):
            raise StepFailed(
                "unreadable_file", "The file is damaged: a sheet starts past its workbook stream."
            )
        if offset not in weights:
            weights[offset] = _sheet_weight(stream, offset, max_cells)
        total += weights[offset]
        if total > max_cells:
            raise StepFailed(
                "too_many_cells",
                f"The workbook's sheets hold more than {max_cells:,} cells together "
                "(an xls is read whole).",
            )


def _records(stream: bytes, pos: int) -> Iterator[tuple[int, int, int]]:
    """(type, data start, data end) of each whole record from ``pos``."""
    while pos + 4 <= len(stream):
        typ, size = _RECORD.unpack_from(stream, pos)
        end = pos + 4 + size
        if end > len(stream):  # calamine stops with an error: nothing to size
            return
        yield typ, pos + 4, end
        pos = end


def _sheet_weight(stream: bytes, pos: int, max_cells: int) -> int:
    """max(cell records, extent) of the sheet at ``pos``; refuses a DIMENSIONS claim."""
    unpack = _RECORD.unpack_from
    end = len(stream)
    depth = 0
    seen_bof = False
    cells = 0
    low_row = low_col = 1 << 16
    high_row = high_col = -1
    while pos + 4 <= end:
        typ, size = unpack(stream, pos)
        data, pos = pos + 4, pos + 4 + size
        if pos > end:
            break
        if depth:  # inside an embedded chart or other nested substream
            depth += (typ == _BOF) - (typ == _EOF)
            continue
        if typ in _CELLS or typ == _FORMULA:
            if size < 4:
                continue  # calamine refuses the record
            row, col = unpack(stream, data)
            first = last = col
            cells += 2 if typ == _FORMULA else 1
        elif typ == _MULRK:
            if size < 6:
                continue
            row, first = unpack(stream, data)
            last = int.from_bytes(stream[pos - 2 : pos], "little")
            if last < first or size != 6 + 6 * (last - first + 1):
                continue  # calamine refuses the record
            cells += last - first + 1
        else:
            if typ == _STRING:
                cells += 1
            elif typ == _DIMENSIONS:
                _check_claim(stream[data:pos], max_cells)
            elif typ == _BOF:
                depth = 1 if seen_bof else 0  # the first BOF is the sheet's own
                seen_bof = True
            elif typ == _EOF:
                break
            continue
        low_row, high_row = min(low_row, row), max(high_row, row)
        low_col, high_col = min(low_col, first), max(high_col, last)
    if high_row < 0:
        return cells
    area = (high_row - low_row + 1) * (high_col - low_col + 1)
    if area > max_cells:
        raise StepFailed(
            "too_many_cells",
            f"A sheet spans {high_row - low_row + 1:,} rows x {high_col - low_col + 1:,} "
            f"columns (more than {max_cells:,} cells).",
        )
    return max(cells, area)


def _check_claim(data: bytes, max_cells: int) -> None:
    """Refuse a DIMENSIONS record for which calamine would reserve more than ``max_cells``."""
    if len(data) == 10:
        first_row, last_row, first_col, last_col = struct.unpack_from("<4H", data)
    elif len(data) == 14:
        first_row, last_row, first_col, last_col = struct.unpack_from("<2I2H", data)
    else:
        return  # calamine refuses the record
    if first_col > 0xFF or last_col < first_col:
        first_col = 0
    if last_row >= 1 and last_col >= 1:
        rows = (last_row - 1 - first_row + 1) & 0xFFFFFFFF  # calamine's u32 arithmetic wraps
        cols = (last_col - 1 - first_col + 1) & 0xFFFFFFFF
    else:
        rows = cols = 1
    if rows * cols > max_cells:
        raise StepFailed(
            "too_many_cells",
            f"A sheet claims {rows:,} rows x {cols:,} columns (more than {max_cells:,} cells).",
        )
