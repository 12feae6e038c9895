"""csv text: decoding without loss, delimiter detection, and the strict record parser.

CSV bytes are decoded as UTF-8 (a BOM is stripped), UTF-16/32 with a BOM, else cp1252 and finally
latin-1, which cannot fail; decoding never inserts U+FFFD.  The delimiter is one of , ; tab | and
is detected from the first rows unless given.  Kept free of polars: the upload inspection
counts records with it in a fresh interpreter.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from pathlib import Path

from chatflow.failures import StepFailed

DELIMITERS = (",", ";", "\t", "|")
# What an upload may write instead of a tab (a form field cannot easily hold one).
DELIMITER_NAMES = {"tab": "\t", "\\t": "\t"}
SNIFF_CHARS = 64 * 1024
_SNIFF_RECORDS = 50


def open_csv(path: Path, delimiter: str | None) -> tuple[str, str]:
    """The file's text and its delimiter (detected unless given); StepFailed if it is empty
    or the delimiter is not one character."""
    text = decode_text(path.read_bytes())
    if not text.strip():
        raise StepFailed("empty_file", "The file is empty.")
    if delimiter is None:
        return text, detect_delimiter(text)
    check_delimiter(delimiter)
    return text, delimiter


def check_delimiter(delimiter: str) -> None:
    """StepFailed unless ``delimiter`` is one character that is not a quote or a line end."""
    if len(delimiter) != 1 or delimiter in '"\r\n':
        raise StepFailed("invalid_delimiter", f"Invalid delimiter {delimiter!r}.")


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


def detect_delimiter(text: str, *, truncated: bool = False) -> str:
    """The candidate that splits the first rows into the most consistent, widest records.

    ``text`` is the file's text or its start (then ``truncated``).  If no candidate yields two
    columns the file has one column: pick a delimiter that splits no row, so a value such as
    "Smith, John" stays whole.
    """
    sample = text[:SNIFF_CHARS]
    truncated = truncated or len(text) > len(sample)
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


def csv_records(text: str, delimiter: str) -> Iterator[list[str]]:
    """Non-empty records, all padded to the header's width; malformed input raises StepFailed
    (naming its line) when the iteration reaches it."""
    nul = text.find("\x00")
    nul_line = _line_of(text, nul) if nul >= 0 else None
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    width = 0
    first = True
    start = 1
    try:
        for record in reader:
            end = reader.line_num
            if nul_line is not None and nul_line <= end:
                raise _malformed(nul_line, f"Line {nul_line} contains a NUL byte.")
            if any(record):
                if first:
                    width, first = len(record), False
                elif len(record) > width:
                    if any(record[width:]):
                        raise _malformed(
                            start,
                            f"Line {start} has {len(record)} fields but the header has {width}.",
                        )
                    del record[width:]
                elif len(record) < width:
                    record.extend([""] * (width - len(record)))
                yield record
            start = end + 1
    except csv.Error as exc:
        if "unexpected end of data" in str(exc):
            raise _malformed(start, f"Line {start}: a quoted field is never closed.") from exc
        line = reader.line_num
        raise _malformed(line, f"Line {line}: {exc}.") from exc


def _malformed(line: int, message: str) -> StepFailed:
    return StepFailed("malformed_csv", message, details={"line": line})
