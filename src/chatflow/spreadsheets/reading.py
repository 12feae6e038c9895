"""Read an xlsx sheet or a csv file into a table of strings, with one header policy for both.

Types: every column is read as text (``pl.String``) so nothing is reinterpreted: "01234" stays
"01234" and long ids stay exact.  An xlsx cell that holds a number is rendered the way calamine
prints it: whole numbers without a decimal part ("1234", not "1234.0"), others in shortest
round-trip form ("3.5").  Booleans become "true"/"false".  Excel date cells come back as
dates: a column whose every value is a date cell becomes ``pl.Date`` (``pl.Datetime`` when some
have a time of day); a column mixing dates with other values keeps them as text.  Error
cells (#N/A, #DIV/0!) and formulas without a cached value become null.  In csv an empty field is
null; whitespace is never stripped from cells.

Layout, identical for xlsx and csv:
- empty cells ("" or missing) are null, and rows in which every cell is null are dropped;
- the header is the first remaining row, every later row is data;
- header names are stripped of surrounding whitespace; a blank name becomes ``column_N`` (N is the
  1-based position in the table) and a repeated name becomes ``name_2``, ``name_3``... (see
  ``unique_headers``); names are case-sensitive;
- xlsx reads the used range of the sheet (calamine drops wholly empty leading rows and columns),
  merged cells keep their value in the top-left cell only, hidden sheets are readable by name and
  the default sheet is the first one in the workbook;
- csv rows shorter than the header are padded with nulls; a longer row is an error naming its line,
  unless every surplus field is empty (a trailing delimiter), which is dropped.

CSV bytes are decoded as UTF-8 (a BOM is stripped), UTF-16/32 with a BOM, else cp1252 and finally
latin-1, which cannot fail; decoding never inserts U+FFFD.  The delimiter is one of , ; tab | and
is detected from the first rows unless given.

xlsx files are assumed to have passed ``inspection.check_xlsx_container`` (in a sandbox) first;
here only the magic bytes are checked so that an OLE file never reaches calamine, which aborts on
some of them.  Every library error becomes ``StepFailed`` with a stable code.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import fastexcel
import polars as pl

from chatflow.operations.failures import StepFailed

Kind = Literal["xlsx", "csv"]
Container = Literal["zip", "ole", "ole_encrypted", "empty", "other"]

DELIMITERS = (",", ";", "\t", "|")
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
# An encrypted OOXML workbook is an OLE container holding these streams (names are UTF-16LE).
_ENCRYPTION_STREAMS = tuple(s.encode("utf-16-le") for s in ("EncryptedPackage", "EncryptionInfo"))
_OLE_SCAN_LIMIT = 64 * 1024 * 1024
_SNIFF_CHARS = 64 * 1024
_SNIFF_RECORDS = 50


def unique_headers(raw: Sequence[str | None]) -> list[str]:
    """Header names by the shared policy: stripped, blanks -> column_N, repeats -> name_2, ..."""
    cleaned = [(h or "").strip() for h in raw]
    reserved = {c for c in cleaned if c}  # a real header keeps its name over a generated one
    taken: set[str] = set()
    next_suffix: dict[str, int] = {}
    names: list[str] = []
    for position, given in enumerate(cleaned, start=1):
        base = given or f"column_{position}"
        name = base
        if name in taken or (not given and name in reserved):
            k = next_suffix.get(base, 2)
            while f"{base}_{k}" in taken or f"{base}_{k}" in reserved:
                k += 1
            name = f"{base}_{k}"
            next_suffix[base] = k + 1
        taken.add(name)
        names.append(name)
    return names


def sniff_container(path: Path) -> Container:
    """What the file's magic bytes say it is, without trusting its name."""
    with path.open("rb") as fh:
        head = fh.read(8)
        if not head:
            return "empty"
        if head.startswith(_ZIP_MAGICS):
            return "zip"
        if head != _OLE_MAGIC:
            return "other"
        fh.seek(0)
        return "ole_encrypted" if _contains_any(fh, _ENCRYPTION_STREAMS) else "ole"


def _contains_any(fh: io.BufferedReader, needles: tuple[bytes, ...]) -> bool:
    """Whether any needle occurs in the first _OLE_SCAN_LIMIT bytes, read in chunks."""
    overlap = max(len(n) for n in needles) - 1
    tail = b""
    read = 0
    while read < _OLE_SCAN_LIMIT:
        chunk = fh.read(1 << 20)
        if not chunk:
            return False
        read += len(chunk)
        window = tail + chunk
        if any(n in window for n in needles):
            return True
        tail = window[-overlap:]
    return False


def refuse_non_workbook(path: Path) -> None:
    """Raise StepFailed unless the file is at least a zip container (an xlsx candidate)."""
    kind = sniff_container(path)
    if kind == "zip":
        return
    if kind == "empty":
        raise StepFailed("empty_file", "The file is empty.")
    if kind == "ole_encrypted":
        raise StepFailed("password_protected", "Password-protected workbooks are not supported.")
    if kind == "ole":
        raise StepFailed(
            "legacy_or_ole_file",
            "This is a legacy Excel (.xls) or other OLE file; please save it as .xlsx.",
        )
    raise StepFailed("not_a_spreadsheet", "The file is not an .xlsx workbook.")


def sheet_names(path: Path, kind: Kind) -> list[str]:
    """The workbook's sheet names in order (hidden ones included); csv has none."""
    if kind == "csv":
        return []
    return list(_open_workbook(path).sheet_names)


def read_table(
    path: Path, *, kind: Kind, sheet: str | None = None, delimiter: str | None = None
) -> pl.DataFrame:
    """Read one sheet (default: the first) or a csv file as an all-string table."""
    if kind == "xlsx":
        return _read_xlsx(path, sheet)
    if kind == "csv":
        if sheet is not None:
            raise StepFailed(
                "sheet_not_found", f"Sheet '{sheet}' not found: CSV files have no sheets."
            )
        return _read_csv(path, delimiter)
    raise StepFailed("unsupported_kind", f"Unsupported file kind '{kind}'.")


# --- xlsx ---------------------------------------------------------------------------------


def _open_workbook(path: Path) -> fastexcel.ExcelReader:
    refuse_non_workbook(path)
    with _library_errors(path):
        return fastexcel.read_excel(path)


@contextlib.contextmanager
def _library_errors(path: Path) -> Iterator[None]:
    """Turn fastexcel/calamine errors into StepFailed without leaking host paths."""
    try:
        yield
    except Exception as exc:
        raise _library_error(exc, path) from exc
    except BaseException as exc:  # pyo3 turns a Rust panic into PanicException(BaseException)
        if type(exc).__name__ == "PanicException":
            raise _library_error(exc, path) from exc
        raise


def _read_xlsx(path: Path, sheet: str | None) -> pl.DataFrame:
    reader = _open_workbook(path)
    names = list(reader.sheet_names)
    if not names:
        raise StepFailed("empty_file", "The workbook has no sheets.")
    target = names[0] if sheet is None else sheet
    if target not in names:
        raise StepFailed(
            "sheet_not_found",
            f"Sheet '{target}' not found; available sheets: {', '.join(names)}",
            details={"sheet": target, "available": names},
        )
    with _library_errors(path):
        # No header row here: the header policy below is shared with csv.
        grid = reader.load_sheet(target, header_row=None, dtypes="string").to_polars()
    table = _apply_header_policy(grid)
    if table is None:
        raise StepFailed("empty_sheet", f"Sheet '{target}' is empty.", details={"sheet": target})
    return _restore_dates(table)


# calamine renders a date cell read as text as "YYYY-MM-DD HH:MM:SS" (fractions optional).
_CALAMINE_DATETIME = r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d+)?$"


def _restore_dates(table: pl.DataFrame) -> pl.DataFrame:
    """Columns whose every value is a rendered Excel date become Date (or Datetime) again."""
    restored = []
    for name in table.columns:
        column = table[name]
        values = column.drop_nulls()
        if values.len() == 0 or not values.str.contains(_CALAMINE_DATETIME).all():
            continue
        stamps = column.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", strict=False)
        if (stamps.drop_nulls() == stamps.drop_nulls().dt.truncate("1d")).all():
            restored.append(stamps.dt.date().alias(name))
        else:
            restored.append(stamps.alias(name))
    return table.with_columns(restored) if restored else table


def _library_error(exc: BaseException, path: Path) -> StepFailed:
    text = str(exc)
    if "password protected" in text.lower():
        return StepFailed("password_protected", "Password-protected workbooks are not supported.")
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    first = first.removeprefix("calamine error: ").replace(str(path), path.name)[:300]
    return StepFailed(
        "unreadable_file", f"The workbook could not be read ({first}).", details={"reason": first}
    )


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
    return table


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
