"""One xlsx assembled from the row chunks rustpy-xlsxwriter wrote, each as a whole workbook.

The library writes a sheet in one call that reports no progress and cannot be stopped, so a
big sheet is written as chunks of rows instead (``writing_rust`` drives them): each chunk is a
complete small workbook in memory, its rows at their final row numbers (``header_row``), the
workbook's other sheets empty so that every chunk registers the same cell formats.  Its
constant-memory writer spells text inline (``t="inlineStr"``) and styles cells by index, so a
``<row>`` element means the same in any of them.  This module streams a sheet's chunks into one
zip entry: the first chunk's head (``dimension`` set to the whole sheet), every chunk's rows
less the header row each chunk repeats, the last chunk's tail; every other part is copied from
the first chunk written.  Chunk files whose styles differ would give cells the wrong formats,
so that is checked rather than assumed.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import zipfile
from pathlib import Path
from typing import IO

# zlib level of the sheet parts: the library deflated each chunk already and they are inflated
# to be joined, so the second deflate is pure overhead; 1 is the fastest (benchmarks in
# docs/benchmarks.md), its file about a fifth larger than the library's.
ZLIB_LEVEL = 1
_PIECE = 1 << 22  # bytes of sheet XML inflated at a time
_HOLD = 1 << 16  # the end of a part kept back until its tail (after </sheetData>) is found
_STYLES = "xl/styles.xml"
_SHEET_DATA = b"<sheetData>"
_SHEET_DATA_END = b"</sheetData>"
_DIMENSION = re.compile(rb'<dimension ref="[^"]*"/>')
# Past this estimate a sheet part gets zip64 sizes from the start: zipfile cannot add them
# later and refuses a part larger than 2 GiB without them.
_ZIP64_ESTIMATE = 1 << 29


def sheet_part(index: int) -> str:
    """The zip entry of the ``index``-th (0-based) sheet, as the library names it."""
    return f"xl/worksheets/sheet{index + 1}.xml"


def cell_ref(row: int, col: int) -> str:
    """A1-style reference of the 0-based ``row`` and ``col``."""
    letters = ""
    col += 1
    while col:
        col, rest = divmod(col - 1, 26)
        letters = chr(65 + rest) + letters
    return f"{letters}{row + 1}"


class ChunkedWorkbook:
    """The xlsx at ``dest``, built sheet by sheet (in order) from chunk workbooks."""

    def __init__(self, dest: Path) -> None:
        self._out = zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED, compresslevel=ZLIB_LEVEL)
        self._reference: zipfile.ZipFile | None = None
        self._styles = b""
        self._copied = 0  # how many of the reference's parts are in the output
        self._part: IO[bytes] | None = None

    def add(
        self,
        chunk: IO[bytes],
        sheet: int,
        *,
        header_row: int,
        last: bool,
        dimension: str,
        chunks: int = 1,
    ) -> None:
        """Append the rows of ``sheet`` in the chunk workbook ``chunk``: its header on
        ``header_row`` (0 for the first chunk, which opens the part with ``dimension`` as its
        range), the whole sheet's tail too when ``last``; ``chunks``: how many there are."""
        archive = zipfile.ZipFile(chunk)
        if self._reference is None:
            self._reference = archive
            self._styles = archive.read(_STYLES)
        elif archive.read(_STYLES) != self._styles:
            raise RuntimeError("rustpy-xlsxwriter gave the chunks of a workbook different styles")
        name = sheet_part(sheet)
        with archive.open(name) as source:
            if header_row == 0:
                self._copy_reference_parts(until=name)
                size = archive.getinfo(name).file_size * chunks
                self._part = self._out.open(name, "w", force_zip64=size > _ZIP64_ESTIMATE)
                self._copied += 1
            if self._part is None:
                raise RuntimeError(f"sheet {sheet + 1}: a chunk came before its first one")
            if header_row == 0 and last:  # the sheet is this one chunk, as the library wrote it
                shutil.copyfileobj(source, self._part, _PIECE)
            else:
                _copy_rows(
                    source, self._part, header_row=header_row, last=last, dimension=dimension
                )
        if last:
            self._part.close()
            self._part = None

    def close(self) -> None:
        """Copy the parts after the last sheet and finish the zip."""
        self._copy_reference_parts(until=None)
        self._out.close()

    def abort(self) -> None:
        """Close without finishing (the caller removes the file); errors here would only
        hide the one that made the caller abort."""
        with contextlib.suppress(Exception):
            if self._part is not None:
                self._part.close()
        with contextlib.suppress(Exception):
            self._out.close()

    def _copy_reference_parts(self, until: str | None) -> None:
        if self._reference is None:
            raise RuntimeError("no chunk was written")
        names = self._reference.namelist()
        while self._copied < len(names) and names[self._copied] != until:
            name = names[self._copied]
            self._out.writestr(name, self._reference.read(name))
            self._copied += 1


def _copy_rows(
    source: IO[bytes], out: IO[bytes], *, header_row: int, last: bool, dimension: str
) -> None:
    """Stream one chunk's sheet XML into ``out``: the head only for the first chunk, the
    header row only for the first chunk, the tail only for the last."""
    buffer = source.read(_PIECE)
    while (start := buffer.find(_SHEET_DATA)) < 0 or (
        header_row and buffer.find(b"</row>", start) < 0
    ):
        piece = source.read(_PIECE)
        if not piece:
            raise RuntimeError("a chunk's sheet XML has no rows")
        buffer += piece
    start += len(_SHEET_DATA)
    if header_row == 0:
        head, count = _DIMENSION.subn(f'<dimension ref="{dimension}"/>'.encode(), buffer[:start])
        if count != 1:
            raise RuntimeError("a chunk's sheet XML has no dimension")
        out.write(head)
    elif buffer.startswith(f'<row r="{header_row + 1}"'.encode(), start):
        start = buffer.index(b"</row>", start) + len(b"</row>")
    # The tail is shorter than _HOLD, so a piece that long holds all of it: what came before
    # is rows, and goes out as it is.
    held: bytes | memoryview = memoryview(buffer)[start:]
    while piece := source.read(_PIECE):
        if len(piece) >= _HOLD:
            out.write(held)
            held = piece
        else:
            held = bytes(held) + piece
    end = bytes(held[-_HOLD:]).rfind(_SHEET_DATA_END)
    if end < 0:
        raise RuntimeError("a chunk's sheet XML has no end of rows")
    out.write(held if last else held[: max(0, len(held) - _HOLD) + end])
