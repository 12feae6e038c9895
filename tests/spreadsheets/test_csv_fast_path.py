"""The native csv read (spreadsheets/reading_csv.py) against the strict parser, rule by rule:
which files polars may read, that it then reads exactly what ``csv_records`` reads, and that
every other file falls back to the strict parser's rows or its error naming the line.  Also the
type rule's shortcuts (spreadsheets/cell_types.py): a kind ruled out or in by the first rows."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatflow.failures import StepFailed
from chatflow.spreadsheets.cell_types import type_text_columns
from chatflow.spreadsheets.csv_text import csv_records, detect_delimiter
from chatflow.spreadsheets.reading import read_table
from chatflow.spreadsheets.reading_csv import _table_of_utf8_file, apply_header_policy


def _strict(text: str, delimiter: str) -> pl.DataFrame:
    """What the strict parser makes of ``text``: the reference for the native read."""
    columns = zip(*csv_records(text, delimiter), strict=True)
    grid = pl.DataFrame([pl.Series(f"c{i}", c, dtype=pl.String) for i, c in enumerate(columns)])
    table = apply_header_policy(grid)
    assert table is not None
    return type_text_columns(table)


def _write(tmp_path: Path, content: str | bytes) -> Path:
    path = tmp_path / "t.csv"
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


NATIVE = {
    "delimiters in quotes": 'id,name\n1,"Smith, Ann"\n2,"Lee, Bo"\n',
    "doubled quotes": 'id,name\n1,"Bob ""Ng"""\n2,""""\n3,"""x"""\n',
    "quoted empty is empty": 'a,b\n"",1\n2,""\n',
    "line feed in quotes": 'a,b\n"x\ny",1\n',
    "CRLF in quotes": 'a,b\r\n"x\r\ny",1\r\n2,3\r\n',
    "CRLF, no final line end": 'a,b\r\n1,"2"',
    "everything quoted": '"a","b","c"\r\n"007","2024-01-02","1.5"\r\n"8","2024-01-03","2"\r\n',
    "short rows padded": 'a,b,c\n1\n"2",3\n',
    "blank and empty rows dropped": 'a,b\n\n1,2\n,\n"",""\n3,4\n',
    "BOM then a quoted header": '\ufeff"a",b\n"1",2\n',
    "semicolons": 'a;b\n"1;5";2\n"x";"y"\n',
    "quotes next to spaces stay text": 'a,b\n x ,"  y  "\n',
}


@pytest.mark.parametrize("text", NATIVE.values(), ids=NATIVE.keys())
def test_polars_reads_what_the_strict_parser_reads(tmp_path: Path, text: str) -> None:
    path = _write(tmp_path, text)
    assert _table_of_utf8_file(path, None) is not None  # the native path was taken
    expected = _strict(text.removeprefix("\ufeff"), detect_delimiter(text))
    got = read_table(path, kind="csv")
    assert got.schema == expected.schema and got.rows() == expected.rows()


def test_native_rows_and_types_exactly(tmp_path: Path) -> None:
    text = 'id,name,n\r\n007,"Lee, ""Bo""",1\r\n008,"a\r\nb",\r\n009,"",-2\r\n'
    path = _write(tmp_path, text)
    assert _table_of_utf8_file(path, None) is not None
    got = read_table(path, kind="csv")
    assert got.schema == pl.Schema({"id": pl.String, "name": pl.String, "n": pl.Int64})
    assert got.rows() == [("007", 'Lee, "Bo"', 1), ("008", "a\r\nb", None), ("009", None, -2)]


# Files the native read must leave to the strict parser, and the rows that parser gives.
STRICT_ROWS: dict[str, tuple[str, list[tuple[Any, ...]]]] = {
    "lone CR ends a record": ("a,b\r1,2\r", [(1, 2)]),
    "lone CR inside quotes": ('a,b\n"x\ry",1\n', [("x\ry", 1)]),
    "CR before CRLF": ("a,b\r\n1,2\r\r\n3,4\r\n", [(1, 2), (3, 4)]),
    "quote inside an unquoted field": (
        'h,w\nAnn,5\'10"\nBo,6"\n',
        [("Ann", "5'10\""), ("Bo", '6"')],
    ),
    "quotes across fields": ('a,b\nx"y,1\n2,z"w\n', [('x"y', "1"), ("2", 'z"w')]),
    "trailing delimiter": ("a,b\n1,2,\n3,4,\n", [(1, 2), (3, 4)]),
    "blank first line": ("\na,b\n1,2\n", [(1, 2)]),
    "empty first row narrows nothing": (',\n"",\na\n1\n', [(1,)]),  # one column, not two
}


@pytest.mark.parametrize(("text", "rows"), STRICT_ROWS.values(), ids=STRICT_ROWS.keys())
def test_other_files_get_the_strict_parsers_rows(
    tmp_path: Path, text: str, rows: list[tuple[Any, ...]]
) -> None:
    path = _write(tmp_path, text)
    assert _table_of_utf8_file(path, None) is None
    assert read_table(path, kind="csv").rows() == rows


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ('a,b\n1,"x"y\n', 2, "expected"),  # text after a closing quote
        ('a,b\n1,"x" \n', 2, "expected"),
        ('a,b\n"1\n2",3\n4,5,6\n', 4, "3 fields"),  # a wide row after a quoted line break
        ('a,b\n1,2\n3,"never closed\n4,5\n', 3, "never closed"),  # an odd number of quotes
        ('a,b\n"1",2\n3,"x\x00"\n', 3, "NUL"),
    ],
)
def test_malformed_quoting_names_the_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    path = _write(tmp_path, text)
    assert _table_of_utf8_file(path, None) is None
    with pytest.raises(StepFailed) as caught:
        read_table(path, kind="csv")
    assert caught.value.code == "malformed_csv" and caught.value.details == {"line": line}
    assert f"Line {line}" in caught.value.message and words in caught.value.message


def test_other_encodings_are_transcoded_then_read_natively(tmp_path: Path) -> None:
    path = _write(tmp_path, 'naïve,"€uro, x"\r\n"José, J",5\r\n'.encode("cp1252"))
    assert _table_of_utf8_file(path, None) is None  # not UTF-8: decoded first
    got = read_table(path, kind="csv")
    assert got.columns == ["naïve", "€uro, x"] and got.rows() == [("José, J", 5)]


def test_invalid_utf8_past_the_sniffed_head_is_decoded_as_cp1252(tmp_path: Path) -> None:
    path = _write(tmp_path, b"a,b\n" + b'"x",1\n' * 50_000 + b"caf\xe9,2\n")
    assert _table_of_utf8_file(path, None) is None  # polars refuses the byte; no U+FFFD
    got = read_table(path, kind="csv")
    assert got.height == 50_001 and got.row(-1) == ("café", 2) and got.dtypes[1] == pl.Int64


def test_a_delimiter_polars_cannot_take_goes_to_the_strict_parser(tmp_path: Path) -> None:
    path = _write(tmp_path, 'a§b\n1§"x§y"\n')
    assert _table_of_utf8_file(path, "§") is None
    assert read_table(path, kind="csv", delimiter="§").rows() == [(1, "x§y")]


def test_a_blank_file_is_empty_not_headerless(tmp_path: Path) -> None:
    path = _write(tmp_path, "  \r\n\t\n")
    with pytest.raises(StepFailed) as caught:
        read_table(path, kind="csv")
    assert caught.value.code == "empty_file" and caught.value.message == "The file is empty."


PIECES = st.sampled_from(["a", "1", "é", " ", ",", '"', '""', "\n", "\r\n", "\r", "\x00"])


@pytest.mark.slow  # fuzzing
@settings(
    max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.lists(PIECES, min_size=1, max_size=30).map("".join))
def test_fuzz_the_native_read_never_differs_from_the_strict_parser(
    tmp_path: Path, text: str
) -> None:
    path = _write(tmp_path, text)
    fast = _table_of_utf8_file(path, ",")
    if fast is None:
        return  # the strict parser decides, as the other tests show
    records = list(csv_records(text, ","))  # must not raise: polars read the file
    assert records  # polars' first row has a value, so the strict parser's has one too
    columns = zip(*records, strict=True)
    strict = apply_header_policy(
        pl.DataFrame([pl.Series(f"c{i}", c, dtype=pl.String) for i, c in enumerate(columns)])
    )
    assert strict is not None
    expected = type_text_columns(strict)
    assert fast.schema == expected.schema and fast.rows() == expected.rows()


# --- the type rule past the first rows -----------------------------------------------------

_FILLER = 1500  # more rows than the type rule samples


LATE_VALUES = [
    ("12", "1.5", pl.Float64, 1.5),  # whole in the sample, a fraction later
    ("12", "1e+20", pl.Float64, 1e20),
    ("12", "1e20", pl.String, "1e20"),
    ("12", "1234567890123456", pl.String, "1234567890123456"),  # 16 digits: an id
    ("1.5", "0.30000000000000004", pl.Float64, 0.30000000000000004),  # a double's text
    ("1.5", "0.12345678901234567890", pl.String, "0.12345678901234567890"),
    (None, "12", pl.Int64, 12),  # empty in the first rows: the late value decides
    (None, "x", pl.String, "x"),
    ("12", "n/a", pl.String, "n/a"),
    ("12", "012", pl.String, "012"),
    ("1.5", "2", pl.Float64, 2.0),
    ("x", "12", pl.String, "12"),
    ("2024-01-02", "2024-01-03 04:05", pl.Datetime("us"), dt.datetime(2024, 1, 3, 4, 5)),
    ("2024-01-02", "2023-02-29", pl.String, "2023-02-29"),
    (
        "2024-01-02 03:04:05",
        "2024-01-02T03:04:05.25",
        pl.Datetime("us"),
        dt.datetime(2024, 1, 2, 3, 4, 5, 250000),
    ),
    ("2024-01-02 03:04:05", "2024-01-02 3:04:05", pl.String, "2024-01-02 3:04:05"),
]


@pytest.mark.parametrize(("first", "late", "dtype", "late_value"), LATE_VALUES)
def test_a_late_value_decides_the_type(
    first: str | None, late: str, dtype: pl.DataType, late_value: object
) -> None:
    values: list[str | None] = [first] * _FILLER + [None, late]
    out = type_text_columns(pl.DataFrame({"v": values}, schema={"v": pl.String}))["v"]
    assert out.dtype == dtype
    assert out[-1] == late_value and out[-2] is None
    assert out[0] == (first if dtype == pl.String else out[0])
    assert out.null_count() == (1 if first is not None else _FILLER + 1)


@pytest.mark.parametrize(("first", "late", "dtype", "late_value"), LATE_VALUES)
def test_a_late_value_decides_the_type_in_the_one_pass_read(
    tmp_path: Path, first: str | None, late: str, dtype: pl.DataType, late_value: object
) -> None:
    """The streaming read types a column by its first rows and checks the rest as it goes; a
    late value that doubts the kind sends the column to the full rule, with the same result."""
    lines = [f"{i},{first or ''}" for i in range(_FILLER)] + [
        f"{_FILLER},",
        f"{_FILLER + 1},{late}",
    ]
    path = _write(tmp_path, "k,v\n" + "\n".join(lines) + "\n")
    got = _table_of_utf8_file(path, None)
    assert got is not None  # the native read, not the strict parser
    out = got.get_column("v")
    assert got.get_column("k").dtype == pl.Int64 and got.height == _FILLER + 2
    assert out.dtype == dtype and out[-1] == late_value and out[-2] is None
    assert out.null_count() == (1 if first is not None else _FILLER + 1)
