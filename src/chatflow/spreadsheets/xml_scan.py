"""Stream an XML part once, without a parser: refuse DTDs, count cells and strings, track the
cell extent.  Parts may be UTF-8 (a BOM is allowed) or UTF-16 with a BOM, as XML allows; UTF-16
is transcoded to UTF-8 for the scan (``Utf8Stream``), anything else is refused.

Counting is by substrings, so it is never fewer than what calamine sees: ``<c`` also counts
``<col>``, a namespace prefix is allowed (``<x:c``), and ``r="..."`` attributes widen the extent.
"""

from __future__ import annotations

import codecs
import math
import re
from collections.abc import Callable
from itertools import repeat

from chatflow.failures import StepFailed
from chatflow.spreadsheets.zip_parts import GateLimits

MAX_TAG = 1024 * 1024
SHEET_ROWS, SHEET_COLUMNS = 1_048_576, 16_384  # an xlsx sheet's grid
# An r="A1" / r="7" attribute: cells give row and column, rows give a row.  It also matches
# other attributes ending in "r" (firstPageNumber="1"): that can only widen the estimate.
_REF = re.compile(rb"""r\s*=\s*["']([A-Za-z]*[0-9]+)["']""")
_LETTERS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_DIGITS = b"0123456789"
# A start tag's name after its "<"; the rest of the tag is found with bytes.find, because the
# one pattern <(?![?!/])(?:[\w.-]+:)?([\w.-]+)([^>]*)> backtracked quadratically on a long
# "<aaa..." with no ">" after it (a part's last megabyte took the whole inspection timeout).
_TAG_START = re.compile(rb"<(?=[\w.-])")
# An empty cell, one that closes itself.  "[^<>]*" cannot backtrack past a tag.
_EMPTY_CELL = re.compile(rb"<(?:[\w.-]+:)?c\s[^<>]*/>")
_CELL_STARTS = (b"<c>", b"<c ", b":c>", b":c ")
_ROW_START = re.compile(rb"<(?:[\w.-]+:)?row[\s>]")
# A cell's reference (not a row's), read as its row's digits and its column's letters: two
# passes that make no per-match object for a one-letter column (bytes of length 1 are shared).
_CELL_ROW = re.compile(rb"""r\s*=\s*["'][A-Za-z]+([0-9]+)["']""")
_CELL_COLUMN = re.compile(rb"""r\s*=\s*["']([A-Za-z]+)[0-9]+["']""")
_TAG_NAME = re.compile(rb"(?:[\w.-]+:)?([\w.-]+)")
_SST_COUNT = re.compile(rb"""(?:uniqueCount|count)\s*=\s*["']\s*([0-9]+)""")
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_UTF32_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)


def root_tag(text: bytes) -> tuple[bytes, bytes] | None:
    """(local name, attribute text) of the first start tag of ``text`` that is closed, in
    linear time; not processing instructions, declarations or end tags."""
    start = _TAG_START.search(text)
    if start is None:
        return None
    name = _TAG_NAME.match(text, start.end())
    assert name is not None  # the start's lookahead saw a name character
    # No ">" after the first name means none after any later "<" either.
    close = text.find(b">", name.end())
    return None if close == -1 else (name.group(1), text[name.end() : close])


class Utf8Stream:
    """Turns an XML part's bytes into UTF-8 piece by piece, judging the encoding by its start."""

    def __init__(self, part: str) -> None:
        self.part = part
        self.head = b""  # bytes held back until the start can be judged
        self.decoder: codecs.IncrementalDecoder | None = None
        self.judged = False
        self.transcoded = False

    def feed(self, data: bytes) -> bytes:
        if not self.judged:
            self.head += data
            if len(self.head) < 4:
                return b""
            start, self.head = self.head, b""
            return self._judge(start)
        if self.decoder is None:
            return data
        try:
            return self.decoder.decode(data).encode("utf-8")
        except UnicodeDecodeError as exc:
            raise self._refuse("is not valid UTF-16") from exc

    def close(self) -> bytes:
        """What is left: a part shorter than four bytes, or the decoder's tail."""
        if not self.judged:
            return self._judge(self.head)
        if self.decoder is None:
            return b""
        try:
            return self.decoder.decode(b"", final=True).encode("utf-8")
        except UnicodeDecodeError as exc:
            raise self._refuse("ends inside a UTF-16 character") from exc

    def _judge(self, start: bytes) -> bytes:
        self.judged = True
        if start.startswith(_UTF32_BOMS):
            raise self._refuse("is UTF-32, which OOXML does not use")
        if start.startswith(_UTF16_BOMS):
            self.decoder = codecs.getincrementaldecoder("utf-16")()
            self.transcoded = True
            return self.feed(start)
        if b"\x00" in start[:4]:
            raise self._refuse("is neither UTF-8 nor UTF-16 with a byte-order mark")
        return start.removeprefix(codecs.BOM_UTF8)

    def _refuse(self, what: str) -> StepFailed:
        return StepFailed("unreadable_file", f"Part '{self.part}' {what}.")


class XmlScanner:
    """Streams one XML part: refuses DTDs, counts cells and strings, tracks the cell extent."""

    def __init__(self, part: str, limits: GateLimits) -> None:
        self.part = part
        self.limits = limits
        self.utf8 = Utf8Stream(part)
        self.carry = b""
        self.root: bytes | None = None
        self.in_sheet_data = False
        self.cells = 0
        self.strings = 0
        # The used range calamine allocates: its cells with data.  An empty, styled cell
        # (<c r="XFD1048576" s="1"/>, Gnumeric writes thousands) holds nothing and calamine
        # skips it, as it skips rows without cells.  A cell without r="..." is placed by
        # counting, so from the first one on every reference counts, rows and empty cells
        # included (the conservative estimate).
        self.extent = _Extent()
        self.unplaced = False

    def feed(self, data: bytes) -> None:
        buffer = self.carry + self.utf8.feed(data)
        cut = _tag_boundary(buffer)
        self.carry = buffer[cut:]
        if len(self.carry) > MAX_TAG:
            raise StepFailed("unreadable_file", f"Part '{self.part}' has an absurdly long tag.")
        self._scan(buffer[:cut])

    def close(self) -> None:
        self._scan(self.carry + self.utf8.close())
        self.carry = b""

    def _scan(self, text: bytes) -> None:
        if not text:
            return
        self._refuse_declarations(text)
        if self.root is None:
            self._find_root(text)
        # "<c" also counts <col>, <cfRule>...: a few extra, never fewer than calamine sees.
        cells = text.count(b"<c") + text.count(b":c")
        self.cells += cells
        if self.root in (None, b"sst"):  # only the shared strings part holds strings
            self.strings += text.count(b"<si>") + text.count(b"<si ") + text.count(b":si>")
        if max(self.cells, self.strings) > self.limits.max_cells:
            raise self._too_many(f"holds more than {self.limits.max_cells:,} cells or strings")
        if not self.in_sheet_data:
            # Cells only count inside <sheetData>; before it, attributes such as a pane's
            # would only add noise.
            start = text.find(b"sheetData")
            if start == -1:
                return
            self.in_sheet_data = True
            text = text[start:]
        self._track_extent(text, cells)

    def _track_extent(self, text: bytes, cells: int) -> None:
        """Widen the extent by ``text``'s references; ``cells`` over-counts its cells."""
        if not self.unplaced:
            # Bytes-level work only (C speed): a per-tag Python loop tripled the gate's time.
            empty = _EMPTY_CELL.findall(text) if b"/>" in text else None
            if empty:
                # Skipped by calamine, but a reference past the sheet is never honest.
                self._refuse_off_sheet(_REF.findall(b"".join(empty)))
                text = _EMPTY_CELL.sub(b"", text)
                cells = text.count(b"<c") + text.count(b":c")
            rows = _CELL_ROW.findall(text)
            # The exact count of cell starts only when the over-count says some may lack a ref.
            if cells > len(rows) and sum(map(text.count, _CELL_STARTS)) > len(rows):
                self.unplaced = True
            elif rows:
                self.extent.widen_by(set(rows), set(_CELL_COLUMN.findall(text)), self._too_many)
        if self.unplaced:
            refs = _REF.findall(text)
            # Counted cells run left to right from column A: the widest row is the width.
            widest = max(sum(map(row.count, _CELL_STARTS)) for row in _ROW_START.split(text))
            self.extent.cols = (1, max(self.extent.cols[1], widest))
            if refs:
                self.extent.widen(refs, self._too_many)
        check_extent(self.part, self.extent.rows, self.extent.cols, self.limits)

    def _refuse_off_sheet(self, refs: list[bytes]) -> None:
        off = _Extent()
        off.widen(refs, self._too_many)
        if off.rows[1] > SHEET_ROWS or off.cols[1] > SHEET_COLUMNS:
            raise self._too_many("refers to a cell beyond any sheet")

    def _refuse_declarations(self, text: bytes) -> None:
        """Only comments and CDATA may start with "<!": a DTD is never needed in OOXML."""
        at = text.find(b"<!")
        while at != -1:
            if not text.startswith((b"<!--", b"<![CDATA["), at):
                raise StepFailed(
                    "xml_dtd_forbidden",
                    f"Part '{self.part}' declares a DTD or entities, which are not allowed.",
                )
            at = text.find(b"<!", at + 2)

    def _find_root(self, text: bytes) -> None:
        found = root_tag(text)
        if found is None:
            return
        self.root, attributes = found
        if self.root == b"sst":  # calamine preallocates for the claimed string counts
            for claimed in _SST_COUNT.findall(attributes):
                if len(claimed) > 15 or int(claimed) > self.limits.max_cells:
                    raise self._too_many(
                        f"claims {claimed[:20].decode()} shared strings "
                        f"(more than {self.limits.max_cells:,})"
                    )

    def _too_many(self, what: str) -> StepFailed:
        return StepFailed("too_many_cells", f"Part '{self.part}' {what}.")


class _Extent:
    """First and last row and column of the references seen."""

    def __init__(self) -> None:
        self.rows = (math.inf, 0.0)
        self.cols = (math.inf, 0.0)

    def widen(self, refs: list[bytes], too_many: Callable[[str], StepFailed]) -> None:
        """Widen by references such as b"B7" (a cell's) or b"7" (a row's)."""
        # Each distinct row once: a row's cells share its number (~10x fewer int() calls).
        digits = set(map(bytes.lstrip, refs, repeat(_LETTERS)))
        self.widen_by(digits, set(map(bytes.rstrip, refs, repeat(_DIGITS))), too_many)

    def widen_by(
        self, digits: set[bytes], letters: set[bytes], too_many: Callable[[str], StepFailed]
    ) -> None:
        """Widen by the distinct row numbers and column letters of some references."""
        if max(map(len, digits | letters)) > 16:  # longer than any real part, such as XFD
            raise too_many("refers to a cell beyond any sheet")
        rows = list(map(int, digits))
        self.rows = (min(self.rows[0], min(rows)), max(self.rows[1], max(rows)))
        letters.discard(b"")  # a <row r="7">
        if letters:
            cols = [_column_number(col) for col in letters]
            self.cols = (min(self.cols[0], min(cols)), max(self.cols[1], max(cols)))


def check_extent(
    part: str, rows: tuple[float, float], cols: tuple[float, float], limits: GateLimits
) -> None:
    """Refuse a sheet whose used range (first to last row and column seen) is too large: calamine
    allocates the whole rectangle, however few cells are in it."""
    height = rows[1] - rows[0] + 1
    width = cols[1] - cols[0] + 1 if cols[1] else 1
    if height * width > limits.max_cells:
        raise StepFailed(
            "too_many_cells",
            f"Part '{part}' spans {int(height):,} rows x {int(width):,} columns "
            f"(more than {limits.max_cells:,} cells).",
        )


def _tag_boundary(buffer: bytes) -> int:
    """Where to split so no tag straddles two scans: before an unfinished final tag."""
    last_open = buffer.rfind(b"<")
    if last_open == -1 or buffer.find(b">", last_open) != -1:
        return len(buffer)
    return last_open


def _column_number(letters: bytes) -> int:
    """1-based column number of Excel column letters (A=1, XFD=16384)."""
    number = 0
    for char in letters.upper():
        number = number * 26 + (char - 64)
    return number
