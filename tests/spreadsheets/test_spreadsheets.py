"""Reading and writing spreadsheets: types, the shared header policy, csv quirks, atomic output."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Any

import openpyxl
import polars as pl
import pytest

from chatflow.failures import StepFailed
from chatflow.spreadsheets.csv_text import csv_records, decode_text, detect_delimiter
from chatflow.spreadsheets.reading import (
    read_table,
    sheet_names,
    unique_headers,
)
from chatflow.spreadsheets.writing import (
    escape_formula_text,
    excel_sheet_name,
    write_csv,
)
from tests.fixtures_util import HOSTILE, make_csv, make_xlsx, write_table_xlsx


def _fails(code: str, fn: object, *args: object, **kwargs: object) -> StepFailed:
    with pytest.raises(StepFailed) as caught:
        fn(*args, **kwargs)  # type: ignore[operator]
    assert caught.value.code == code, caught.value.message
    return caught.value


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".part"))


# --- header policy --------------------------------------------------------------------------


def test_unique_headers_blank_duplicate_and_collisions() -> None:
    assert unique_headers(["id", "name", "name", None, "  ", "id", " city "]) == [
        "id",
        "name",
        "name_2",
        "column_4",
        "column_5",
        "id_2",
        "city",
    ]
    # A real header keeps its name; generated suffixes step around it.
    assert unique_headers(["a", "a", "a_2"]) == ["a", "a_3", "a_2"]
    assert unique_headers(["x", None, "column_2"]) == ["x", "column_2_2", "column_2"]
    assert unique_headers(["Name", "name", "NAME"]) == ["Name", "name", "NAME"]


def test_header_policy_is_identical_for_xlsx_and_csv(tmp_path: Path) -> None:
    grid: list[list[Any]] = [
        [None, None, None, None],
        ["id", "name", "name", None],
        [1, "a", "b", "c"],
        [None, None, None, None],
        [2, "d", None, None],
    ]
    xlsx = read_table(make_xlsx(tmp_path / "t.xlsx", grid), kind="xlsx")
    text = "\n".join(",".join("" if v is None else str(v) for v in row) for row in grid) + "\n"
    csv = read_table(make_csv(tmp_path / "t.csv", text), kind="csv")
    expected = pl.DataFrame(
        {"id": [1, 2], "name": ["a", "d"], "name_2": ["b", None], "column_4": ["c", None]}
    )
    assert xlsx.equals(expected)
    assert csv.equals(expected)


# --- xlsx reading ---------------------------------------------------------------------------


def test_xlsx_text_stays_text_and_numbers_stay_numbers(tmp_path: Path) -> None:
    rows: list[list[Any]] = [
        ["zip", "id", "n", "x", "when"],
        ["01234", "123456789012345678901234", 1234, 3.5, dt.date(2024, 2, 29)],
        ["00501", "0000", -7, 0.1, None],
    ]
    df = read_table(make_xlsx(tmp_path / "t.xlsx", rows), kind="xlsx")
    assert df.schema == pl.Schema(
        {"zip": pl.String, "id": pl.String, "n": pl.Int64, "x": pl.Float64, "when": pl.Date}
    )
    assert df.rows() == [
        ("01234", "123456789012345678901234", 1234, 3.5, dt.date(2024, 2, 29)),
        ("00501", "0000", -7, 0.1, None),
    ]


def test_excel_date_cells_become_dates_and_mixed_columns_stay_text(tmp_path: Path) -> None:
    rows: list[list[Any]] = [
        ["day", "stamp", "mixed", "typed"],
        [dt.date(2024, 1, 31), dt.datetime(2024, 1, 31, 8, 30), dt.date(2024, 1, 31), "2024-01-31"],
        [dt.date(1999, 12, 31), dt.datetime(1999, 12, 31), "n/a", "soon"],
    ]
    df = read_table(make_xlsx(tmp_path / "d.xlsx", rows), kind="xlsx")
    assert df.schema == pl.Schema(
        {"day": pl.Date, "stamp": pl.Datetime("us"), "mixed": pl.String, "typed": pl.String}
    )
    assert df.rows() == [
        (
            dt.date(2024, 1, 31),
            dt.datetime(2024, 1, 31, 8, 30),
            "2024-01-31",  # a date cell in a mixed column reads as its ISO date
            "2024-01-31",
        ),
        (dt.date(1999, 12, 31), dt.datetime(1999, 12, 31), "n/a", "soon"),
    ]
    write_table_xlsx(df, tmp_path / "out.xlsx")
    sheet = openpyxl.load_workbook(tmp_path / "out.xlsx").active
    assert sheet is not None
    assert sheet["A2"].is_date and sheet["A2"].value == dt.datetime(2024, 1, 31)


def test_leading_zeros_survive_xlsx_read_write_read(tmp_path: Path) -> None:
    source = make_xlsx(tmp_path / "in.xlsx", [["code"], ["01234"], ["00000"], ["7"]])
    table = read_table(source, kind="xlsx")
    write_table_xlsx(table, tmp_path / "out.xlsx")
    again = read_table(tmp_path / "out.xlsx", kind="xlsx")
    assert again["code"].to_list() == ["01234", "00000", "7"]
    sheet = openpyxl.load_workbook(tmp_path / "out.xlsx").active
    assert sheet is not None
    cell = sheet["A2"]
    assert (cell.value, cell.data_type) == ("01234", "s")


def test_sheets_by_name_and_errors(tmp_path: Path) -> None:
    path = make_xlsx(tmp_path / "t.xlsx", {"First": [["a"], ["1"]], "Second": [["b"], ["2"]]})
    assert sheet_names(path, "xlsx") == ["First", "Second"]
    assert read_table(path, kind="xlsx").columns == ["a"]
    assert read_table(path, kind="xlsx", sheet="Second").rows() == [("2",)]  # text cells
    error = _fails("sheet_not_found", read_table, path, kind="xlsx", sheet="Third")
    assert error.message == "Sheet 'Third' not found; available sheets: First, Second"
    assert error.details["available"] == ["First", "Second"]


def test_structure_edge_cases_fixture() -> None:
    path = HOSTILE / "structure_edge_cases.xlsx"
    names = sheet_names(path, "xlsx")
    assert "hidden" in names and "very_hidden" in names
    merged = read_table(path, kind="xlsx")
    assert merged.columns == ["Region", "Q1", "column_3", "Q2", "column_5"]
    assert merged["Region"].to_list() == [None, "north", None, "south"]  # no merge fill
    dup = read_table(path, kind="xlsx", sheet="dup_header")
    assert dup.columns[:5] == ["id", "name", "name_2", "column_4", "column_5"]
    assert read_table(path, kind="xlsx", sheet="hidden").columns == ["secret"]
    _fails("empty_sheet", read_table, path, kind="xlsx", sheet="empty")
    mixed = read_table(path, kind="xlsx", sheet="mixed_types")["value"].to_list()
    assert mixed[:4] == ["1", "two", "3.5", "true"] and "  7 " in mixed


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("encrypted_password.xlsx", "password_protected"),
        ("ole_cfb_header_only.xlsx", "unreadable_file"),
        ("png_renamed.xlsx", "not_a_spreadsheet"),
        ("not_zip_plaintext.xlsx", "not_a_spreadsheet"),
        ("empty_zero_bytes.xlsx", "empty_file"),
        ("truncated_half.xlsx", "unreadable_file"),
        ("truncated_sheet_xml.xlsx", "unreadable_file"),
        ("empty_sheet.xlsx", "empty_sheet"),
    ],
)
def test_unreadable_workbooks_fail_cleanly(name: str, code: str) -> None:
    error = _fails(code, read_table, HOSTILE / name, kind="xlsx")
    assert str(HOSTILE) not in error.message
    if code == "password_protected":
        assert "not supported" in error.message


# --- csv reading ----------------------------------------------------------------------------


def test_csv_fixtures() -> None:
    bom = read_table(HOSTILE / "csv_utf8_bom.csv", kind="csv")
    assert bom.columns[0] == "id" and bom["name"][0] == "José"
    latin = read_table(HOSTILE / "csv_latin1_nobom.csv", kind="csv")
    assert latin.rows()[0] == (1, "José", "Zürich", "£12±3")
    assert not any("\ufffd" in v for row in latin.rows() for v in row if isinstance(v, str))
    semi = read_table(HOSTILE / "csv_semicolon_decimal_comma.csv", kind="csv")
    assert semi.columns == ["id", "name", "amount"]
    assert semi["amount"].to_list() == ["1.234,56", "-0,5"]
    header_only = read_table(HOSTILE / "csv_header_only.csv", kind="csv")
    assert (header_only.columns, header_only.height) == (["id", "name", "amount"], 0)
    dup = read_table(HOSTILE / "csv_duplicate_and_blank_headers.csv", kind="csv")
    assert dup.columns == ["id", "name", "name_2", "column_4", "id_2"]
    _fails("empty_file", read_table, HOSTILE / "csv_empty.csv", kind="csv")
    malformed = _fails("malformed_csv", read_table, HOSTILE / "csv_malformed.csv", kind="csv")
    assert malformed.details == {"line": 4} and "Line 4" in malformed.message


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ('a,b\n1,2\n3,"never closed\n4,5\n', 3, "never closed"),
        ("a,b\n1,2\n3,x\x00y\n", 3, "NUL"),
        ("a,b\r\n1,2\r3,4,5\r\n", 3, "3 fields"),
        ('a,b\n1,"x"y\n', 2, "expected"),
    ],
)
def test_malformed_csv_names_the_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    error = _fails("malformed_csv", read_table, make_csv(tmp_path / "m.csv", text), kind="csv")
    assert error.details == {"line": line}
    assert f"Line {line}" in error.message and words in error.message


def test_csv_ragged_rows_blank_lines_and_quoting(tmp_path: Path) -> None:
    text = 'id,name,note\n\n1,alice\n2,"multi\nline",x,\n,,\n3,"a,b",""\n'
    df = read_table(make_csv(tmp_path / "r.csv", text), kind="csv")
    assert df.rows() == [
        (1, "alice", None),  # padded
        (2, "multi\nline", "x"),  # a trailing empty field is tolerated
        (3, "a,b", None),
    ]


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-32", "cp1252"])
def test_csv_encodings(tmp_path: Path, encoding: str) -> None:
    text = "naïve,€uro\r\nJosé,5\r\n"
    df = read_table(make_csv(tmp_path / "e.csv", text, encoding), kind="csv")
    assert df.columns == ["naïve", "€uro"] and df.rows() == [("José", 5)]


def test_decoding_never_replaces() -> None:
    assert decode_text(b"caf\xe9 \x81") == "café \x81"  # cp1252 gap -> latin-1
    with pytest.raises(StepFailed) as caught:
        decode_text(b"\xef\xbb\xbfbad \xff")
    assert caught.value.code == "bad_encoding"


def test_delimiters(tmp_path: Path) -> None:
    assert detect_delimiter("a\tb\tc\n1\t2,5\t3\n") == "\t"
    assert detect_delimiter("a|b\n1|2\n") == "|"
    assert detect_delimiter("single\nvalue\n") == ","
    assert detect_delimiter("name\nSmith, John\nDoe; Jane\n") == "\t"  # one column, kept whole
    path = make_csv(tmp_path / "d.csv", "a;b\n1;2\n")
    assert read_table(path, kind="csv", delimiter=",").columns == ["a;b"]
    _fails("invalid_delimiter", read_table, path, kind="csv", delimiter='"')
    _fails("sheet_not_found", read_table, path, kind="csv", sheet="Sheet1")


@pytest.mark.parametrize("content", [b"", b"  \r\n\n", b",,\n,\n"])
def test_empty_csv(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "e.csv"
    path.write_bytes(content)
    _fails("empty_file", read_table, path, kind="csv")


# --- writing --------------------------------------------------------------------------------


def test_xlsx_writes_formula_like_text_as_inert_text(tmp_path: Path) -> None:
    payloads = ["=1+1", "+1+1", "@SUM(1,1)", "=cmd|' /C calc'!A0", "-14", '=HYPERLINK("x")']
    dest = tmp_path / "f.xlsx"
    write_table_xlsx(pl.DataFrame({"v": payloads}), dest)
    sheet = openpyxl.load_workbook(dest).active
    assert sheet is not None
    cells = [sheet.cell(row=r + 2, column=1) for r in range(len(payloads))]
    assert [(c.value, c.data_type) for c in cells] == [(p, "s") for p in payloads]
    assert sheet["A1"].font.bold


def test_xlsx_types(tmp_path: Path) -> None:
    df = pl.DataFrame(
        {
            "i": [1, None, 2**60],
            "f": [1.5, float("nan"), None],
            "b": [True, None, False],
            "d": [dt.date(2024, 1, 2), None, dt.date(1850, 1, 1)],
            "t": [dt.datetime(2024, 1, 2, 3, 4, 5), None, None],
        }
    )
    dest = tmp_path / "types.xlsx"
    write_table_xlsx(df, dest, sheet_name="Data")
    sheet = openpyxl.load_workbook(dest)["Data"]
    assert [c.value for c in sheet[2]] == [1, 1.5, True, dt.datetime(2024, 1, 2), df["t"][0]]
    assert [c.value for c in sheet[3]] == [None, "nan", None, None, None]
    assert [c.value for c in sheet[4]][:4] == [str(2**60), None, False, "1850-01-01"]


def test_sheet_names_are_sanitised() -> None:
    assert excel_sheet_name("a/b:c*d?e[f]g\\h") == "a_b_c_d_e_f_g_h"
    assert len(excel_sheet_name("x" * 40)) == 31
    assert excel_sheet_name("'quoted'") == "quoted"
    assert excel_sheet_name("") == "Sheet1"
    assert excel_sheet_name("History") == "History_"


def test_xlsx_progress_and_limits(tmp_path: Path) -> None:
    seen: list[float] = []
    write_table_xlsx(pl.DataFrame({"n": range(1000)}), tmp_path / "p.xlsx", progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == 1.0 and 15 <= len(seen) <= 25
    _fails(
        "value_too_long", write_table_xlsx, pl.DataFrame({"s": ["x" * 40_000]}), tmp_path / "l.xlsx"
    )
    too_tall = pl.DataFrame({"n": pl.zeros(1_048_576, eager=True)})
    _fails("too_many_rows", write_table_xlsx, too_tall, tmp_path / "t.xlsx")
    assert not (tmp_path / "l.xlsx").exists() and _leftovers(tmp_path) == []


@pytest.mark.parametrize("kind", ["xlsx", "csv"])
def test_failed_write_leaves_nothing_behind(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where xlsxwriter's row data goes
    dest = tmp_path / f"out.{kind}"
    dest.write_bytes(b"previous")

    def explode(fraction: float) -> None:
        raise RuntimeError("cancelled mid-write")

    df = pl.DataFrame({"a": [str(i) for i in range(200)]})
    writer = write_table_xlsx if kind == "xlsx" else write_csv
    with pytest.raises(RuntimeError):
        writer(df, dest, progress=explode)
    assert dest.read_bytes() == b"previous"
    assert _leftovers(tmp_path) == []
    assert list(scratch.iterdir()) == []


def test_csv_output_escapes_formulas_but_not_numbers(tmp_path: Path) -> None:
    table = read_table(HOSTILE / "csv_formula_injection.csv", kind="csv")
    dest = tmp_path / "out.csv"
    write_csv(table, dest)
    raw = dest.read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf")
    back = read_table(dest, kind="csv")
    risky = ("=", "+", "-", "@", "\t", "\r", "\uff1d")
    for value in back["comment"].to_list() + back["name"].to_list():
        assert not value.startswith(risky) or value.lstrip("-").replace(".", "").isdigit()
    assert back["comment"][0] == "'=cmd|' /C calc'!A0"
    assert back["id"].to_list()[-1] == -14 and back["amount"].to_list()[-1] == -3.25
    write_csv(table, dest, escape_formulas=False)
    assert read_table(dest, kind="csv").equals(table)


def test_escape_formula_text_rules() -> None:
    values = ["-14", "+5", "1e3", "-1+1", "=A1", "@x", "\t=1", "safe", "'=x", "-", None]
    out = escape_formula_text(pl.DataFrame({"v": values, "n": range(len(values))}))
    assert out["v"].to_list() == [
        "-14",
        "+5",
        "1e3",
        "'-1+1",
        "'=A1",
        "'@x",
        "'\t=1",
        "safe",
        "'=x",
        "'-",
        None,
    ]
    assert out["n"].to_list() == list(range(len(values)))


def test_csv_round_trip_and_delimiter(tmp_path: Path) -> None:
    df = pl.DataFrame({"a": ["01", "x;y", ""], "b": ['say "hi"', "line\nbreak", "end"]})
    dest = tmp_path / "o.csv"
    write_csv(df, dest, delimiter=";")
    back = read_table(dest, kind="csv")
    assert back["a"].to_list() == ["01", "x;y", None]  # "" reads back as null
    assert back["b"].to_list() == ['say "hi"', "line\nbreak", "end"]


def test_the_native_csv_path_reads_exactly_what_the_strict_parser_reads(tmp_path: Path) -> None:
    from chatflow.spreadsheets.cell_types import type_text_columns
    from chatflow.spreadsheets.reading_csv import _table_of_utf8_file, apply_header_policy

    text = "id;name;;name\r\n\r\n007; Ann ;x;y\r\n8;Bo\r\n   \r\n9;;;\r\n"
    path = make_csv(tmp_path / "t.csv", text)
    fast = _table_of_utf8_file(path, ";")
    assert fast is not None
    records = list(csv_records(text, ";"))
    strict = pl.DataFrame(
        [
            pl.Series(f"c{i}", col, dtype=pl.String)
            for i, col in enumerate(zip(*records, strict=True))
        ]
    )
    assert fast.equals(type_text_columns(apply_header_policy(strict)))  # type: ignore[arg-type]
    assert read_table(path, kind="csv").rows() == [
        ("007", " Ann ", "x", "y"),
        ("8", "Bo", None, None),
        ("   ", None, None, None),
        ("9", None, None, None),
    ]
