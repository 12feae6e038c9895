"""Vet an uploaded file and describe it; meant to run in a resource-capped child (see sandbox.py).

``python -m chatflow.spreadsheets.inspection [--max-cells N] [--max-uncompressed-mb M] KIND PATH``
writes one JSON line to stdout, ``{"ok": true, "info": {...}}`` or
``{"ok": false, "code": ..., "message": ...}``, and exits 0 either way; any other exit means the
child crashed.  ``info`` is ``{"sheets": [...], "columns": [...], "row_count": n}`` describing the
first sheet; csv has no sheets, so ``sheets`` is ``[]``.

Before calamine sees an xlsx, ``check_xlsx_container`` inflates every zip member itself, in
bounded chunks, because calamine trusts what it reads and aborts the whole process (an
uncatchable "memory allocation failed") on bombs, corner-to-corner cells or huge shared-string
counts.  Declared sizes, CRCs and ``<dimension ref>`` are never used for sizing: only bytes
actually inflated and elements actually seen count.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import struct
import sys
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any, BinaryIO

from chatflow.operations.failures import StepFailed
from chatflow.spreadsheets.reading import read_table, refuse_non_workbook, sheet_names

DEFAULT_MAX_CELLS = 5_000_000
DEFAULT_MAX_UNCOMPRESSED_MB = 200

_REQUIRED_PARTS = ("[Content_Types].xml", "xl/workbook.xml")
_XML_SUFFIXES = (".xml", ".rels", ".vml")
_IN_CHUNK = 64 * 1024
_OUT_CHUNK = 1024 * 1024
_MAX_TAG = 1024 * 1024
# Inflation ratios are only judged past this size: tiny parts compress absurdly well.
_RATIO_FLOOR = 16 * 1024 * 1024
_LOCAL_HEADER = struct.Struct("<4s22xHH")
# An r="A1" / r="7" attribute: cells give row and column, rows give a row.  It also matches
# other attributes ending in "r" (firstPageNumber="1"): that can only widen the estimate.
_REF = re.compile(rb"""r\s*=\s*["']([A-Za-z]*[0-9]+)["']""")
_LETTERS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_DIGITS = b"0123456789"
# A start tag's name after its "<"; the rest of the tag is found with bytes.find, because the
# one pattern <(?![?!/])(?:[\w.-]+:)?([\w.-]+)([^>]*)> backtracked quadratically on a long
# "<aaa..." with no ">" after it (a part's last megabyte took the whole inspection timeout).
_TAG_START = re.compile(rb"<(?=[\w.-])")
_TAG_NAME = re.compile(rb"(?:[\w.-]+:)?([\w.-]+)")
_SST_COUNT = re.compile(rb"""(?:uniqueCount|count)\s*=\s*["']\s*([0-9]+)""")


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


@dataclass(frozen=True)
class GateLimits:
    """What an xlsx may expand to before calamine is allowed to read it."""

    max_cells: int = DEFAULT_MAX_CELLS
    max_uncompressed_mb: int = DEFAULT_MAX_UNCOMPRESSED_MB
    max_ratio: int = 500
    max_members: int = 10_000


def inspect_file(
    path: Path, kind: str, *, limits: GateLimits | None = None, delimiter: str | None = None
) -> dict[str, Any]:
    """Sheets, first-sheet columns and row count; xlsx passes the container gate first."""
    limits = limits or GateLimits()
    if kind == "csv":
        table = read_table(path, kind="csv", delimiter=delimiter)
        _check_table_size(table.height, table.width, limits)
        return {"sheets": [], "columns": table.columns, "row_count": table.height}
    if kind != "xlsx":
        raise StepFailed("unsupported_kind", f"Unsupported file kind '{kind}'.")
    check_xlsx_container(path, limits)
    sheets = sheet_names(path, "xlsx")
    try:
        table = read_table(path, kind="xlsx", sheet=sheets[0] if sheets else None)
    except StepFailed as exc:
        if exc.code != "empty_sheet":
            raise
        return {"sheets": sheets, "columns": [], "row_count": 0}  # later sheets may hold data
    return {"sheets": sheets, "columns": table.columns, "row_count": table.height}


def _check_table_size(rows: int, columns: int, limits: GateLimits) -> None:
    if rows * columns > limits.max_cells:
        raise StepFailed(
            "too_many_cells",
            f"The file has {rows * columns:,} cells; at most {limits.max_cells:,} are supported.",
        )


# --- the xlsx container gate --------------------------------------------------------------


def check_xlsx_container(path: Path, limits: GateLimits) -> None:
    """Refuse anything but a plain, bounded OOXML zip; raises StepFailed with a stable code."""
    refuse_non_workbook(path)
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise StepFailed(
            "unreadable_file", "The file is damaged or truncated (not a complete zip archive)."
        ) from exc
    check_parts(members, limits)
    budget = _Budget(limits)
    with path.open("rb") as fh:
        for member in members:
            scan_member(fh, member, budget, limits)


def check_parts(members: Sequence[zipfile.ZipInfo], limits: GateLimits) -> None:
    """Refuse by the member list alone: too many parts, not a workbook, macros."""
    if len(members) > limits.max_members:
        raise StepFailed("zip_bomb", f"The archive has {len(members):,} parts; that is absurd.")
    names = {m.filename for m in members}
    missing = [p for p in _REQUIRED_PARTS if p not in names]
    if missing:
        raise StepFailed(
            "not_a_spreadsheet",
            f"The file is a zip archive but not an Excel workbook (no {missing[0]}).",
        )
    if any(n.lower().rsplit("/", 1)[-1] == "vbaproject.bin" for n in names):
        raise StepFailed(
            "macros_not_supported",
            "Macro-enabled workbooks are not supported; please save it as a plain .xlsx.",
        )


class _Budget:
    """Bytes inflated so far across the whole archive."""

    def __init__(self, limits: GateLimits) -> None:
        self.limit = limits.max_uncompressed_mb * 1024 * 1024
        self.used = 0

    def spend(self, n: int) -> None:
        self.used += n
        if self.used > self.limit:
            raise StepFailed(
                "zip_bomb",
                f"The workbook expands to more than {self.limit // (1024 * 1024)} MB.",
            )


def scan_member(fh: BinaryIO, member: zipfile.ZipInfo, budget: _Budget, limits: GateLimits) -> None:
    """Inflate one member in bounded chunks, feeding XML parts to a scanner."""
    name = member.filename
    if member.flag_bits & 0x1:
        raise StepFailed("unreadable_file", f"Part '{name}' is encrypted inside the zip.")
    if member.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise StepFailed(
            "unreadable_file", f"Part '{name}' uses unsupported compression {member.compress_type}."
        )
    scanner = _XmlScanner(name, limits) if name.lower().endswith(_XML_SUFFIXES) else None
    inflater = (
        zlib.decompressobj(-zlib.MAX_WBITS)
        if member.compress_type == zipfile.ZIP_DEFLATED
        else None
    )
    consumed = produced = 0
    for chunk in _compressed_chunks(fh, member):
        consumed += len(chunk)
        for piece in _inflate(inflater, chunk):
            produced += len(piece)
            budget.spend(len(piece))
            if produced > _RATIO_FLOOR and produced > limits.max_ratio * consumed:
                raise StepFailed(
                    "zip_bomb", f"Part '{name}' inflates more than {limits.max_ratio}:1."
                )
            if scanner is not None:
                scanner.feed(piece)
        if inflater is not None and inflater.eof:
            break
    if inflater is not None and not inflater.eof:
        raise StepFailed("unreadable_file", f"Part '{name}' is truncated or corrupt.")
    if scanner is not None:
        scanner.close()


def _compressed_chunks(fh: BinaryIO, member: zipfile.ZipInfo) -> Iterator[bytes]:
    """The member's raw bytes, bounded by its declared size and the end of the file."""
    fh.seek(member.header_offset)
    header = fh.read(_LOCAL_HEADER.size)
    if len(header) < _LOCAL_HEADER.size:
        raise StepFailed("unreadable_file", f"Part '{member.filename}' is truncated.")
    magic, name_len, extra_len = _LOCAL_HEADER.unpack(header)
    if magic != b"PK\x03\x04":
        raise StepFailed("unreadable_file", f"Part '{member.filename}' has a corrupt header.")
    fh.seek(member.header_offset + _LOCAL_HEADER.size + name_len + extra_len)
    remaining = member.compress_size
    while remaining > 0:
        chunk = fh.read(min(_IN_CHUNK, remaining))
        if not chunk:
            return
        remaining -= len(chunk)
        yield chunk


def _inflate(inflater: Any, chunk: bytes) -> Iterator[bytes]:
    """Decompress ``chunk`` in pieces of at most _OUT_CHUNK bytes (stored parts pass through)."""
    if inflater is None:
        yield chunk
        return
    data = chunk
    while not inflater.eof:
        piece = inflater.decompress(data, _OUT_CHUNK)
        if piece:
            yield piece
        data = inflater.unconsumed_tail
        if not data and len(piece) < _OUT_CHUNK:
            return  # input used up and no output held back


class _XmlScanner:
    """Streams one XML part: refuses DTDs, counts cells and strings, tracks the cell extent."""

    def __init__(self, part: str, limits: GateLimits) -> None:
        self.part = part
        self.limits = limits
        self.carry = b""
        self.started = False
        self.root: bytes | None = None
        self.in_sheet_data = False
        self.cells = 0
        self.strings = 0
        self.rows = (math.inf, 0.0)
        self.cols = (math.inf, 0.0)

    def feed(self, data: bytes) -> None:
        if not self.started:
            self.started = True
            if data.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in data[:4]:
                raise StepFailed("unreadable_file", f"Part '{self.part}' is not UTF-8 XML.")
        buffer = self.carry + data
        cut = _tag_boundary(buffer)
        self.carry = buffer[cut:]
        if len(self.carry) > _MAX_TAG:
            raise StepFailed("unreadable_file", f"Part '{self.part}' has an absurdly long tag.")
        self._scan(buffer[:cut])

    def close(self) -> None:
        self._scan(self.carry)
        self.carry = b""

    def _scan(self, text: bytes) -> None:
        if not text:
            return
        self._refuse_declarations(text)
        if self.root is None:
            self._find_root(text)
        # "<c" also counts <col>, <cfRule>...: a few extra, never fewer than calamine sees.
        self.cells += text.count(b"<c") + text.count(b":c")
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
        refs = _REF.findall(text)
        if refs:
            self._track_extent(refs)

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

    def _track_extent(self, refs: list[bytes]) -> None:
        if max(map(len, refs)) > 16:  # longer than any real reference such as XFD1048576
            raise self._too_many("refers to a cell beyond any sheet")
        rows = list(map(int, map(bytes.lstrip, refs, repeat(_LETTERS))))
        self.rows = (min(self.rows[0], min(rows)), max(self.rows[1], max(rows)))
        letters = set(map(bytes.rstrip, refs, repeat(_DIGITS)))
        letters.discard(b"")  # a <row r="7">
        if letters:
            cols = [_column_number(col) for col in letters]
            self.cols = (min(self.cols[0], min(cols)), max(self.cols[1], max(cols)))
        height = self.rows[1] - self.rows[0] + 1
        width = self.cols[1] - self.cols[0] + 1 if self.cols[1] else 1
        if height * width > self.limits.max_cells:
            raise self._too_many(
                f"spans {int(height):,} rows x {int(width):,} columns "
                f"(more than {self.limits.max_cells:,} cells)"
            )

    def _too_many(self, what: str) -> StepFailed:
        return StepFailed("too_many_cells", f"Part '{self.part}' {what}.")


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


# --- command line -------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Inspect one file and write the JSON verdict line; 0 unless the process is broken."""
    parser = argparse.ArgumentParser(prog="python -m chatflow.spreadsheets.inspection")
    parser.add_argument("kind", choices=("xlsx", "csv"))
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
    sys.exit(main())
