"""The gate for OpenDocument spreadsheets (.ods): the zip is checked before calamine reads it.

calamine opens an ods by reading ``mimetype``, ``META-INF/manifest.xml`` (encryption data there
means a password) and ``content.xml``, which holds every sheet, all parsed at once and kept.
It expands repeated rows and cells (``table:number-rows-repeated``,
``table:number-columns-repeated``) into real cells, up to 100 million per sheet, so a few
hundred bytes of XML can ask for gigabytes.  The gate, with the budgets of the xlsx gate:

- the archive: at most ``max_members`` members, every one inflated here in bounded pieces under
  one byte budget and ratio limit (``zip_parts``);
- ``mimetype`` names the OpenDocument spreadsheet type (another OpenDocument file, a text
  document say, is ``not_a_spreadsheet``);
- ``META-INF/manifest.xml``: encryption data is ``password_protected``;
- the manifest, ``content.xml`` and ``styles.xml`` get the XML checks (``xml_scan``: no DTD or
  entities, UTF-8 or UTF-16 with a byte-order mark, element counts);
- ``content.xml``: the cells calamine would make, counted as it makes them (``_CellCount``):
  per sheet the larger of the cells it collects row by row and the grid it builds (first to
  last non-empty row, repeats expanded, by the widest row), summed over the sheets: at most
  ``max_cells``;
- Basic or script modules (``Basic/``, ``Scripts/``) are ``macros_not_supported``, as for
  xlsm: the stored file is served back as uploaded, macros and all.

Members are looked up by their exact names, as calamine's zip reader does.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from chatflow.failures import StepFailed
from chatflow.spreadsheets.cfb import macros_not_supported, password_protected
from chatflow.spreadsheets.xml_scan import MAX_TAG, Utf8Stream, XmlScanner, _tag_boundary
from chatflow.spreadsheets.zip_parts import Budget, GateLimits, list_members, member_pieces

ODS_MIMETYPE = b"application/vnd.oasis.opendocument.spreadsheet"
_OPENDOCUMENT = b"application/vnd.oasis.opendocument."
_MANIFEST = "META-INF/manifest.xml"
_CONTENT = "content.xml"
_XML_PARTS = frozenset({_MANIFEST, _CONTENT, "styles.xml"})
_MACRO_FOLDERS = ("basic/", "scripts/")
_MIMETYPE_MAX = 1024
# calamine's caps: rows per sheet, and columns it materialises per row.
_MAX_ROWS = 1_048_576
_MAX_COLUMNS = 16_384
# The elements calamine's sheet reader acts on; [^<>] keeps a tag without ">" linear.
_TAG = re.compile(rb"<(/?)table:(table-row|table-cell|covered-table-cell|table)(?=[\s/>])([^<>]*)>")
_CELL_ELEMENTS = frozenset({b"table-cell", b"covered-table-cell"})
_REPEATED = re.compile(rb"""table:number-(?:rows|columns)-repeated\s*=\s*["']\s*([0-9]+)""")


def check_ods_container(path: Path, limits: GateLimits) -> None:
    """Refuse anything but a plain, bounded, unencrypted OpenDocument spreadsheet."""
    members = list_members(path, limits)
    names = {m.filename for m in members}
    for required in ("mimetype", _MANIFEST, _CONTENT):
        if required not in names:
            raise StepFailed(
                "not_a_spreadsheet",
                f"The file is a zip archive but not an OpenDocument spreadsheet (no {required}).",
            )
    if any(m.filename.lower().startswith(_MACRO_FOLDERS) and not m.is_dir() for m in members):
        raise macros_not_supported()
    budget = Budget(limits)
    # The manifest first: in an encrypted file every other part is ciphertext, which the XML
    # checks would refuse as whatever its random bytes resemble.
    members.sort(key=lambda m: m.filename != _MANIFEST)
    with path.open("rb") as fh:
        for member in members:
            _scan(fh, member, budget, limits)


def _scan(fh: BinaryIO, member: zipfile.ZipInfo, budget: Budget, limits: GateLimits) -> None:
    """Inflate one member under the budget, checking what calamine will parse."""
    name = member.filename
    pieces = member_pieces(fh, member, budget, limits)
    if name == "mimetype":
        _check_mimetype(b"".join(_capped(pieces, _MIMETYPE_MAX, name)))
        return
    if name not in _XML_PARTS:
        for _ in pieces:
            pass
        return
    scanner = XmlScanner(name, limits)
    utf8 = Utf8Stream(name)
    consumer = _CellCount(limits.max_cells) if name == _CONTENT else _Encryption()
    for piece in pieces:
        scanner.feed(piece)
        consumer.feed(utf8.feed(piece))
    scanner.close()
    consumer.feed(utf8.close())
    consumer.close()


def _capped(pieces: Iterator[bytes], cap: int, name: str) -> Iterator[bytes]:
    held = 0
    for piece in pieces:
        held += len(piece)
        if held > cap:
            raise StepFailed("not_a_spreadsheet", f"Part '{name}' is not an OpenDocument type.")
        yield piece


def _check_mimetype(value: bytes) -> None:
    """calamine reads the first 46 bytes: the spreadsheet type (or its template's)."""
    if value.startswith(ODS_MIMETYPE):
        return
    if value.startswith(_OPENDOCUMENT):
        shown = value[len(_OPENDOCUMENT) :].decode("ascii", "replace")[:40]
        raise StepFailed(
            "not_a_spreadsheet",
            f"The file is an OpenDocument {shown} file, not a spreadsheet.",
        )
    raise StepFailed("not_a_spreadsheet", "The file is a zip archive but not an OpenDocument file.")


class _Encryption:
    """Watches the manifest (and styles.xml, harmlessly) for encryption data."""

    def __init__(self) -> None:
        self.tail = b""

    def feed(self, text: bytes) -> None:
        window = self.tail + text
        if b"encryption-data" in window:
            raise password_protected()
        self.tail = window[-len(b"encryption-data") :]

    def close(self) -> None:
        pass


class _CellCount:
    """Counts the cells calamine makes from content.xml, sheet by sheet (see the module doc)."""

    def __init__(self, max_cells: int) -> None:
        self.max_cells = max_cells
        self.carry = b""
        self.total = 0  # the weight of the sheets already finished
        self.depth = 0  # sheets open (a sheet inside a cell makes two)
        self._new_sheet()

    def _new_sheet(self) -> None:
        self.rows = 0  # expanded rows so far
        self.first = self.end = -1  # expanded rows of the first non-empty row, after the last
        self.width = 0  # the widest non-empty row's materialised cells
        self.collected = 0  # cells collected row by row before the grid is built
        self.repeats = 1  # of the open row
        self.columns = 0  # of the open row, repeats included
        self.filled = 0  # of the open row, up to and including its last non-empty cell

    def feed(self, text: bytes) -> None:
        buffer = self.carry + text
        cut = _tag_boundary(buffer)
        self.carry = buffer[cut:]
        if len(self.carry) > MAX_TAG:
            raise StepFailed("unreadable_file", f"Part '{_CONTENT}' has an absurdly long tag.")
        # Cells are most of the elements: handled here, with the open row's counts in locals.
        columns, filled = self.columns, self.filled
        for match in _TAG.finditer(buffer, 0, cut):
            closing, element, attributes = match.groups()
            if element in _CELL_ELEMENTS:  # calamine caps a row at 16,384 columns
                if closing:
                    continue
                repeats = _repeats(attributes) if b"repeated" in attributes else 1
                columns = min(_MAX_COLUMNS, columns + repeats)
                if b"office:" in attributes or b"table:formula" in attributes:
                    filled = columns
                continue
            self.columns, self.filled = columns, filled
            self._element(element, closing == b"/", attributes)
            columns, filled = self.columns, self.filled
        self.columns, self.filled = columns, filled

    def close(self) -> None:
        # calamine reads a sheet until its end tag and never stops if the part ends first.
        if self.depth > 0:
            raise StepFailed("unreadable_file", f"Part '{_CONTENT}' ends inside a sheet.")

    def _element(self, element: bytes, closing: bool, attributes: bytes) -> None:
        empty = attributes.endswith(b"/")
        if element == b"table":
            if not closing and not empty:
                self.depth += 1
                self._new_sheet()
            else:
                self.depth -= closing
                self._end_sheet()
        else:  # a row
            if not closing:
                self.repeats = _repeats(attributes)
                self.columns = self.filled = 0
            if closing or empty:
                self._end_row()

    def _end_row(self) -> None:
        repeats = min(self.repeats, _MAX_ROWS - self.rows)
        if self.filled:
            self.first = self.rows if self.first < 0 else self.first
            self.end = self.rows + repeats
            self.width = max(self.width, self.filled)
            self.collected += self.filled
            self._check()
        self.rows += repeats

    def _end_sheet(self) -> None:
        self.total += self._weight()
        self._new_sheet()

    def _weight(self) -> int:
        grid = (self.end - self.first) * self.width if self.first >= 0 else 0
        return max(self.collected, grid)

    def _check(self) -> None:
        if self.total + self._weight() > self.max_cells:
            raise StepFailed(
                "too_many_cells",
                f"The spreadsheet's sheets hold more than {self.max_cells:,} cells "
                "(repeated rows and cells counted one by one).",
            )


def _repeats(attributes: bytes) -> int:
    """A row's or cell's repeat count; any count past a sheet's size is as good as infinite."""
    found = _REPEATED.search(attributes)
    if found is None:
        return 1
    digits = found.group(1)
    return max(1, int(digits)) if len(digits) <= 12 else 10**12
