"""Read a workbook sheet or a csv file into a typed table, with one header policy for both.

Types follow ``cell_types``: a workbook column (xlsx, xls, xlsb or ods, ``reading_workbook``)
keeps the kind its cells share (numbers, booleans, dates, text; a column mixing kinds is text),
a csv column is typed only when every value has one reading ("01234" and "+1" stay text).
Error cells and formulas without a cached value are null; in csv an empty field is null;
whitespace is never stripped from cells.

Layout, identical for workbooks and csv:
- empty cells ("" or missing) are null, and rows in which every cell is null are dropped;
- the header is the first remaining row, every later row is data;
- header names are stripped of surrounding whitespace; a blank name becomes ``column_N`` (N is the
  1-based position in the table) and a repeated name becomes ``name_2``, ``name_3``... (see
  ``headers.unique_headers``); names are case-sensitive;
- csv rows shorter than the header are padded with nulls; a longer row is an error naming its line,
  unless every surplus field is empty (a trailing delimiter), which is dropped.

CSV bytes are decoded as UTF-8 (a BOM is stripped), UTF-16/32 with a BOM, else cp1252 and finally
latin-1, which cannot fail; decoding never inserts U+FFFD.  The delimiter is one of , ; tab | and
is detected from the first rows unless given.  Every library error becomes ``StepFailed`` with a
stable code.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from pathlib import Path

import polars as pl

from chatflow.failures import StepFailed
from chatflow.filenames import WORKBOOK_KINDS
from chatflow.spreadsheets.cell_types import type_text_columns
from chatflow.spreadsheets.headers import unique_headers as unique_headers
from chatflow.spreadsheets.reading_workbook import read_workbook, workbook_sheet_names
from chatflow.spreadsheets.reading_workbook import refuse_non_workbook as refuse_non_workbook

DELIMITERS = (",", ";", "\t", "|")
_SNIFF_CHARS = 64 * 1024
_SNIFF_RECORDS = 50


def sheet_names(path: Path, kind: str) -> list[str]:
    """The workbook's sheet names in order (hidden ones included); csv has none.  ``kind`` is
    a kind of ``filenames.KINDS``, the one the inspection found, or a step's parquet."""
    if kind in ("csv", "parquet"):
        return []
    return workbook_sheet_names(path, kind)


def read_table(
    path: Path, *, kind: str, sheet: str | None = None, delimiter: str | None = None
) -> pl.DataFrame:
    """Read one sheet (default: the first) of a workbook, or a csv file, as a typed table."""
    if kind in WORKBOOK_KINDS:
        return read_workbook(path, kind, sheet)
    if kind == "csv":
        if sheet is not None:
            raise StepFailed(
                "sheet_not_found", f"Sheet '{sheet}' not found: CSV files have no sheets."
            )
        return _read_csv(path, delimiter)
    if kind == "parquet":  # a step's parquet output, read by a later step: typed already
        if sheet is not None:
            raise StepFailed("sheet_not_found", f"Sheet '{sheet}' not found: parquet has none.")
        return pl.read_parquet(path)
    raise StepFailed("unsupported_kind", f"Unsupported file kind '{kind}'.")


# --- shared layout policy -----------------------------------------------------------------


def _apply_header_policy(grid: pl.DataFrame) -> pl.DataFrame | None:
    """First non-empty row -> unique header names; the rest is data.  None if there is no row."""
    if grid.width == 0:
        return None
    grid = grid.with_columns(pl.when(pl.all() != "").then(pl.all()).name.keep())
    grid = grid.filter(~pl.all_horizontal(pl.all().is_null()))
    if grid.height == 0:
        return None
    names = unique_headers(list(grid.row(0)))
    return grid.slice(1).rename(dict(zip(grid.columns, names, strict=True)))


# --- csv ----------------------------------------------------------------------------------


def _read_csv(path: Path, delimiter: str | None) -> pl.DataFrame:
    text = decode_text(path.read_bytes())
    if not text.strip():
        raise StepFailed("empty_file", "The file is empty.")
    if delimiter is None:
        delimiter = detect_delimiter(text)
    elif len(delimiter) != 1 or delimiter in '"\r\n':
        raise StepFailed("invalid_delimiter", f"Invalid delimiter {delimiter!r}.")
    grid = _parse_simple_csv(text, delimiter)
    if grid is None:
        records = _parse_csv(text, delimiter)
        if not records:
            raise StepFailed("empty_file", "The file has no non-empty rows.")
        columns = list(zip(*records, strict=True))
        grid = pl.DataFrame(
            [pl.Series(f"c{i}", col, dtype=pl.String) for i, col in enumerate(columns)]
        )
    table = _apply_header_policy(grid)
    if table is None:  # unreachable: records holds at least one non-empty row
        raise StepFailed("empty_file", "The file has no non-empty rows.")
    return type_text_columns(table)


def decode_text(raw: bytes) -> str:
    """Decode csv bytes: BOM-marked UTF-8/16/32, else UTF-8, cp1252, latin-1 (never lossy)."""
    boms = (
        (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16: its BOM starts with UTF-16-LE's
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    )
    for bom, encoding in boms:
        if raw.startswith(bom):
            try:
                return raw.decode(encoding)
            except UnicodeDecodeError as exc:
                raise StepFailed(
                    "bad_encoding",
                    f"The file is marked as {encoding.upper()} but byte {exc.start} is invalid.",
                ) from exc
    for encoding in ("utf-8", "cp1252"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1")


def detect_delimiter(text: str) -> str:
    """The candidate that splits the first rows into the most consistent, widest records.

    If none yields two columns the file has one column: pick a delimiter that splits no row,
    so a value such as "Smith, John" stays whole.
    """
    sample = text[:_SNIFF_CHARS]
    truncated = len(text) > len(sample)
    best, best_score = "", (0.0, 0)
    unsplit = ""
    for candidate in DELIMITERS:
        widths: list[int] = []
        reader = csv.reader(io.StringIO(sample, newline=""), delimiter=candidate)
        try:
            for record in reader:
                if any(record):
                    widths.append(len(record))
                if len(widths) > _SNIFF_RECORDS:
                    break
        except csv.Error:
            pass  # judge the candidate on the records it did produce
        if truncated and len(widths) > 1:
            widths.pop()  # the sample may have cut the last record short
        if not widths or widths[0] < 2:
            if not unsplit and all(w == 1 for w in widths):
                unsplit = candidate
            continue
        score = (sum(w == widths[0] for w in widths) / len(widths), widths[0])
        if score > best_score:
            best, best_score = candidate, score
    return best or unsplit or ","


def _line_of(text: str, index: int) -> int:
    """1-based line of text[index], counting \\r\\n, \\r and \\n as csv does."""
    head = text[:index]
    return head.count("\n") + head.count("\r") - head.count("\r\n") + 1


# A carriage return that does not end a line: csv ends a record there, polars would not.
_LONE_CR = re.compile(r"\r(?!\n)")


def _parse_simple_csv(text: str, delimiter: str) -> pl.DataFrame | None:
    """The raw grid of a csv without quotes, NULs or lone CRs, parsed natively by polars.

    Such text has one reading, so polars (in Rust, ~20x faster) gives what ``_parse_csv`` would.
    Anything else, or a row wider than the first (an error to explain with its line number),
    returns None for the strict parser.
    """
    if '"' in text or "\x00" in text or _LONE_CR.search(text):
        return None
    try:
        grid = pl.read_csv(
            io.BytesIO(text.encode("utf-8")),
            has_header=False,
            separator=delimiter,
            quote_char=None,
            infer_schema=False,
            raise_if_empty=False,
        )
    except pl.exceptions.PolarsError:
        return None
    return grid if grid.height else None


def _parse_csv(text: str, delimiter: str) -> list[list[str]]:
    """Non-empty records, all padded to the header's width; malformed input raises StepFailed."""
    nul = text.find("\x00")
    nul_line = _line_of(text, nul) if nul >= 0 else None
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    records: list[list[str]] = []
    width = 0
    start = 1
    try:
        for record in reader:
            end = reader.line_num
            if nul_line is not None and nul_line <= end:
                raise _malformed(nul_line, f"Line {nul_line} contains a NUL byte.")
            if any(record):
                if not records:
                    width = len(record)
                elif len(record) > width:
                    if any(record[width:]):
                        raise _malformed(
                            start,
                            f"Line {start} has {len(record)} fields but the header has {width}.",
                        )
                    del record[width:]
                elif len(record) < width:
                    record.extend([""] * (width - len(record)))
                records.append(record)
            start = end + 1
    except csv.Error as exc:
        if "unexpected end of data" in str(exc):
            raise _malformed(start, f"Line {start}: a quoted field is never closed.") from exc
        line = reader.line_num
        raise _malformed(line, f"Line {line}: {exc}.") from exc
    return records


def _malformed(line: int, message: str) -> StepFailed:
    return StepFailed("malformed_csv", message, details={"line": line})
