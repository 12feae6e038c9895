"""The csv read: polars' native parser whenever its grid is provably the strict parser's.

``csv_text.csv_records`` (Python's csv module, strict) defines what a csv file holds; polars
parses the same bytes ~30x faster.  They agree on a file that is UTF-8 (a BOM is stripped) and
has no NUL, no carriage return outside a CRLF, and only structural quotes: the rules each
proof below checks, each pinned by a test against the strict parser.  Where polars still
refuses the file (a row wider than the first, a blank first line, any byte it cannot parse),
where the first line is empty (",,": polars would take the table's width from it), or where a
proof fails, the file is decoded and read by the strict parser, which gives the
same rows or the error that names the line.  UTF-8 files are never decoded whole: polars
reads the file itself, and the proofs scan it memory-mapped.
"""

from __future__ import annotations

import codecs
import io
import mmap
from pathlib import Path

import numpy as np
import polars as pl

from chatflow.failures import StepFailed
from chatflow.spreadsheets.cell_types import type_text_columns
from chatflow.spreadsheets.csv_text import (
    SNIFF_CHARS,
    check_delimiter,
    csv_records,
    detect_delimiter,
    open_csv,
)
from chatflow.spreadsheets.headers import unique_headers

_QUOTE, _LF, _CR = ord('"'), ord("\n"), ord("\r")
# UTF-16/32 marks (UTF-32-LE's starts with UTF-16-LE's): such files are transcoded first.
_WIDE_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_BE)
_CHUNK = 1 << 22  # bytes compared at a time: a file-sized mask would leave the caches


def read_csv_table(path: Path, delimiter: str | None) -> pl.DataFrame:
    """The file's typed table (header applied, empty fields null, ``cell_types``' rule), or
    StepFailed as the strict parser words it."""
    table = _table_of_utf8_file(path, delimiter)
    if table is None:
        text, delimiter = open_csv(path, delimiter)
        encoded = text.encode("utf-8")
        table = _native_table(encoded, delimiter) if _plain(encoded, 0, delimiter) else None
        if table is None:
            grid = apply_header_policy(_strict_grid(text, delimiter))
            if grid is None:  # the strict parser found a non-empty row, so polars' grid has one
                raise StepFailed("empty_file", "The file has no non-empty rows.")
            table = type_text_columns(grid)
    return table


def apply_header_policy(grid: pl.DataFrame) -> pl.DataFrame | None:
    """First non-empty row -> unique header names; the rest is data.  None if there is no row."""
    if grid.width == 0:
        return None
    quoted_empty = grid.select((pl.all() == "").any()).row(0)  # unquoted empties are null
    grid = grid.with_columns(
        pl.when(pl.col(c) != "").then(pl.col(c)).alias(c)
        for c, has in zip(grid.columns, quoted_empty, strict=True)
        if has
    )
    if all(s.null_count() for s in grid.iter_columns()):  # else no row is wholly empty
        grid = grid.filter(~pl.all_horizontal(pl.all().is_null()))
    if grid.height == 0:
        return None
    names = unique_headers(list(grid.row(0)))
    return grid.slice(1).rename(dict(zip(grid.columns, names, strict=True)))


def _strict_grid(text: str, delimiter: str) -> pl.DataFrame:
    records = list(csv_records(text, delimiter))
    if not records:
        raise StepFailed("empty_file", "The file has no non-empty rows.")
    columns = list(zip(*records, strict=True))
    return pl.DataFrame([pl.Series(f"c{i}", col, dtype=pl.String) for i, col in enumerate(columns)])


def _table_of_utf8_file(path: Path, delimiter: str | None) -> pl.DataFrame | None:
    """polars' typed table of a UTF-8 file read in place, or None when the text path must
    decide (another encoding, a blank start, a failed proof, an empty file)."""
    with path.open("rb") as f:
        if path.stat().st_size == 0:
            return None
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as view:
            if view[:4].startswith(_WIDE_BOMS):
                return None
            head = _utf8_head(view)
            if head is None or not head.strip():
                return None  # not UTF-8, or blank up front: "empty" needs the whole text
            start = len(codecs.BOM_UTF8) if view[:3] == codecs.BOM_UTF8 else 0
            if delimiter is None:
                more = len(view) - start > len(head.encode("utf-8"))
                delimiter = detect_delimiter(head, truncated=more)
            check_delimiter(delimiter)
            if not _plain(view, start, delimiter):
                return None
    # Read once the proofs' mapping is gone: its pages would count again beside polars' own.
    return _native_table(path, delimiter)


def _utf8_head(view: mmap.mmap) -> str | None:
    """The first ``SNIFF_CHARS`` characters or more (BOM stripped), or None if not UTF-8."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    try:  # 4 bytes per character at most; final=False holds back a character cut in two
        return decoder.decode(view[: 4 * SNIFF_CHARS + 4], final=False)
    except UnicodeDecodeError:
        return None


def _plain(buf: mmap.mmap | bytes, start: int, delimiter: str) -> bool:
    """Whether polars may parse ``buf[start:]`` (the bytes after any BOM) for the strict parser."""
    return len(delimiter.encode("utf-8")) == 1 and _provably_plain(buf, start, ord(delimiter))


def _native_table(source: Path | bytes, delimiter: str) -> pl.DataFrame | None:
    """polars' typed table of a file the proofs passed, or None if polars cannot parse it."""
    try:
        grid = pl.read_csv(
            source if isinstance(source, Path) else io.BytesIO(source),
            has_header=False,
            separator=delimiter,
            quote_char='"',
            infer_schema=False,
            raise_if_empty=False,
        )
    except pl.exceptions.PolarsError:  # invalid UTF-8 included: the text path decodes it
        return None
    if grid.height == 0 or not any(grid.row(0)):
        return None  # polars' width is the first line's, the strict parser's the first non-empty's
    table = apply_header_policy(grid)
    assert table is not None  # its first row has a value
    return type_text_columns(table)


def _provably_plain(buf: mmap.mmap | bytes, start: int, delimiter: int) -> bool:
    """No NUL, every CR in a CRLF, every quote structural (``_quotes_are_structural``)."""
    if len(buf) <= start or buf.find(b"\x00", start) >= 0:
        return False
    data = np.frombuffer(buf, np.uint8)[start:]
    try:
        if buf.find(b"\r", start) >= 0:
            cr = _positions(data, _CR)
            if cr[-1] == len(data) - 1 or not (data[cr + 1] == _LF).all():
                return False
        return buf.find(b'"', start) < 0 or _quotes_are_structural(data, delimiter)
    finally:
        del data  # an mmap cannot close while an array still points into it


def _quotes_are_structural(data: np.ndarray, delimiter: int) -> bool:
    """Whether every quote opens a field or closes one, so both parsers read the same fields.

    Counted in order, odd quotes open and even ones close (a doubled quote inside a field
    closes and reopens).  Python's csv module opens a quoted field only at a field's start and
    (strict) wants a delimiter or a line end after its close; polars treats a quote mid-field
    as text but splits the file into chunks by quote parity, which such a quote upsets.  So:
    an even count, each opening quote after a delimiter, a line feed, the file's start or a
    closing quote, and each closing quote before a delimiter, a line end, the file's end or an
    opening quote.  Anything else goes to the strict parser.
    """
    allowed_before = np.zeros(256, dtype=bool)
    allowed_before[[delimiter, _LF, _QUOTE]] = True
    allowed_after = allowed_before.copy()
    allowed_after[_CR] = True  # the lone-CR rule has already made it a CRLF
    end = len(data) - 1
    seen = 0  # quotes before this chunk: their parity says whether its first quote opens
    for start in range(0, len(data), _CHUNK):  # a chunk at a time: its arrays stay in cache
        quotes = np.flatnonzero(data[start : start + _CHUNK] == _QUOTE) + start
        opening, closing = quotes[seen % 2 :: 2], quotes[1 - seen % 2 :: 2]
        seen += len(quotes)
        if len(opening) and opening[0] == 0:  # the file's start; only its first quote is there
            opening = opening[1:]
        if len(closing) and closing[-1] == end:  # the file's end
            closing = closing[:-1]
        if not (allowed_before[data[opening - 1]].all() and allowed_after[data[closing + 1]].all()):
            return False
    return seen % 2 == 0


def _positions(data: np.ndarray, byte: int) -> np.ndarray:
    """Where ``byte`` occurs in ``data``, in order, scanned a cache-sized chunk at a time."""
    found = [np.flatnonzero(data[i : i + _CHUNK] == byte) + i for i in range(0, len(data), _CHUNK)]
    return np.concatenate(found) if found else np.empty(0, dtype=np.intp)
