"""The type rule (spreadsheets/cell_types.py), value by value, for csv and xlsx."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import openpyxl
import polars as pl
import pytest

from chatflow.spreadsheets.cell_types import type_text_columns
from chatflow.spreadsheets.reading import read_table
from chatflow.spreadsheets.writing import write_csv
from tests.fixtures_util import make_csv, make_xlsx, write_table_xlsx


def _csv_column(values: list[str | None]) -> pl.Series:
    return type_text_columns(pl.DataFrame({"v": values}, schema={"v": pl.String}))["v"]


# (values of one csv column, expected dtype, expected values)
CSV_CASES: list[tuple[list[str | None], pl.DataType, list[Any]]] = [
    (["120", "-80", "0", None], pl.Int64(), [120, -80, 0, None]),
    (["3.5", "-2.25", "10"], pl.Float64(), [3.5, -2.25, 10.0]),
    (["0.5", "-0.5", "0.000001"], pl.Float64(), [0.5, -0.5, 1e-06]),
    (["1.50", "2"], pl.Float64(), [1.5, 2.0]),
    # a leading zero before another digit, or a "+", keeps a code as text
    (["01234", "5"], pl.String(), ["01234", "5"]),
    (["007"], pl.String(), ["007"]),
    (["-012"], pl.String(), ["-012"]),
    (["+1", "2"], pl.String(), ["+1", "2"]),
    (["-0"], pl.String(), ["-0"]),
    # 15 significant digits are a number, 16 are an id, unless the value is a fraction written
    # as its double's shortest text (what number_text writes for a computed float)
    (["123456789012345"], pl.Int64(), [123456789012345]),
    (["1234567890123456"], pl.String(), ["1234567890123456"]),
    (["0.123456789012345"], pl.Float64(), [0.123456789012345]),
    (["0.1234567890123456"], pl.Float64(), [0.1234567890123456]),
    (["0.30000000000000004", "2"], pl.Float64(), [0.30000000000000004, 2.0]),
    (
        ["421.71000000000004", "-0.07350000000000001"],
        pl.Float64(),
        [421.71000000000004, -0.07350000000000001],
    ),
    (["0.12345678901234567890"], pl.String(), ["0.12345678901234567890"]),  # not its double's text
    (["0.10000000000000000"], pl.String(), ["0.10000000000000000"]),
    (["12345678901234567.5"], pl.String(), ["12345678901234567.5"]),
    (["1.5", "12345678901234567"], pl.String(), ["1.5", "12345678901234567"]),  # an id among them
    # exponents only in the form the csv writer itself writes
    (["1e+20", "1.5e-7"], pl.Float64(), [1e20, 1.5e-7]),
    (["1e20"], pl.String(), ["1e20"]),
    (["1E+20"], pl.String(), ["1E+20"]),
    (["1.5e-07"], pl.String(), ["1.5e-07"]),
    # separators, decimal commas, half numbers, spaces, words
    (["1,234", "2"], pl.String(), ["1,234", "2"]),
    (["1,5", "2"], pl.String(), ["1,5", "2"]),
    (["1.", "2"], pl.String(), ["1.", "2"]),
    ([".5"], pl.String(), [".5"]),
    ([" 1", "2"], pl.String(), [" 1", "2"]),
    (["NaN", "1"], pl.String(), ["NaN", "1"]),
    (["inf"], pl.String(), ["inf"]),
    (["true", "false"], pl.String(), ["true", "false"]),
    (["12", "n/a"], pl.String(), ["12", "n/a"]),
    # ISO dates and datetimes
    (
        ["2024-01-02", "2024-02-29", None],
        pl.Date(),
        [dt.date(2024, 1, 2), dt.date(2024, 2, 29), None],
    ),
    (["2023-02-29", "2024-01-01"], pl.String(), ["2023-02-29", "2024-01-01"]),
    (["02/01/2024"], pl.String(), ["02/01/2024"]),
    (
        ["2024-01-02 12:00", "2024-01-03"],
        pl.Datetime("us"),
        [dt.datetime(2024, 1, 2, 12), dt.datetime(2024, 1, 3)],
    ),
    (
        ["2024-01-02T12:00:01.5", "2024-01-02 23:59:59"],
        pl.Datetime("us"),
        [dt.datetime(2024, 1, 2, 12, 0, 1, 500000), dt.datetime(2024, 1, 2, 23, 59, 59)],
    ),
    (["2024-01-02 25:00"], pl.String(), ["2024-01-02 25:00"]),
    (["2024-01-02", "3"], pl.String(), ["2024-01-02", "3"]),
]


@pytest.mark.parametrize(("values", "dtype", "expected"), CSV_CASES)
def test_csv_rule_value_by_value(
    values: list[str | None], dtype: pl.DataType, expected: list[Any]
) -> None:
    column = _csv_column(values)
    assert (column.dtype, column.to_list()) == (dtype, expected)


def test_csv_file_columns_are_typed_and_codes_stay_text(tmp_path: Path) -> None:
    text = (
        "postal_code,amount,flag,id,day,note\n"
        "01234,120,true,1234567890123456,2024-01-02,x\n"
        "99999,-2.25,false,42,2024-01-03,\n"
        ",3.5,,7,,y\n"
    )
    table = read_table(make_csv(tmp_path / "t.csv", text), kind="csv")
    assert table.schema == pl.Schema(
        {
            "postal_code": pl.String,
            "amount": pl.Float64,
            "flag": pl.String,
            "id": pl.String,
            "day": pl.Date,
            "note": pl.String,
        }
    )
    assert table.rows() == [
        ("01234", 120.0, "true", "1234567890123456", dt.date(2024, 1, 2), "x"),
        ("99999", -2.25, "false", "42", dt.date(2024, 1, 3), None),
        (None, 3.5, None, "7", None, "y"),
    ]


def test_xlsx_columns_keep_their_cells_kind(tmp_path: Path) -> None:
    rows: list[list[Any]] = [
        ["amount", "count", "flag", "postal_code", "mixed", "na", "big", "edge", "day", "at"],
        [
            120,
            1,
            True,
            "01234",
            5,
            1.5,
            2**53 + 2,
            2**53,
            dt.date(2024, 1, 2),
            dt.datetime(2024, 1, 2, 8),
        ],
        [
            -80,
            2,
            False,
            "00501",
            "two",
            "n/a",
            1,
            -(2**53),
            dt.date(2024, 1, 3),
            dt.date(2024, 1, 3),
        ],
        [3.5, None, True, " 7 ", True, 2, 3, 0, None, None],
        [None, 4, None, None, dt.date(2024, 5, 1), None, None, None, None, None],
    ]
    table = read_table(make_xlsx(tmp_path / "t.xlsx", rows), kind="xlsx")
    assert table.schema == pl.Schema(
        {
            "amount": pl.Float64,
            "count": pl.Int64,
            "flag": pl.Boolean,
            "postal_code": pl.String,
            "mixed": pl.String,
            "na": pl.String,
            "big": pl.Float64,  # beyond 2**53 a whole number is not exact: float
            "edge": pl.Int64,
            "day": pl.Date,
            "at": pl.Datetime("us"),
        }
    )
    assert table["amount"].to_list() == [120.0, -80.0, 3.5, None]
    assert table["count"].to_list() == [1, 2, None, 4]
    assert table["postal_code"].to_list() == ["01234", "00501", " 7 ", None]
    # a mixed column is text, each cell as it reads: no ".0", booleans as words, dates ISO
    assert table["mixed"].to_list() == ["5", "two", "true", "2024-05-01"]
    # text such as "n/a" in a numeric column is kept (the column becomes text), never dropped
    assert table["na"].to_list() == ["1.5", "n/a", "2", None]
    assert table["edge"].to_list() == [2**53, -(2**53), 0, None]
    assert table["at"].to_list() == [
        dt.datetime(2024, 1, 2, 8),
        dt.datetime(2024, 1, 3),
        None,
        None,
    ]


def test_csv_writes_numbers_shortest_dates_iso_booleans_as_words(tmp_path: Path) -> None:
    df = pl.DataFrame(
        {
            "i": [1, -2],
            "f": [3.0, 0.1],
            "big": [1e20, 1.5e-7],
            "b": [True, False],
            "d": [dt.date(2024, 1, 2), None],
            "t": [dt.datetime(2024, 1, 2, 3, 4, 5), dt.datetime(2024, 1, 2, 3, 4, 6)],
            "s": ["01234", "x"],
        }
    )
    dest = tmp_path / "o.csv"
    write_csv(df, dest)
    assert dest.read_text() == (
        "i,f,big,b,d,t,s\n"
        "1,3,1e+20,true,2024-01-02,2024-01-02 03:04:05,01234\n"
        "-2,0.1,1.5e-7,false,,2024-01-02 03:04:06,x\n"
    )
    back = read_table(dest, kind="csv")
    assert back["f"].to_list() == [3.0, 0.1] and back["big"].to_list() == [1e20, 1.5e-7]
    assert back["t"].to_list() == df["t"].to_list() and back["s"].to_list() == ["01234", "x"]


def test_xlsx_round_trip_keeps_every_cell_type(tmp_path: Path) -> None:
    rows: list[list[Any]] = [
        ["amount", "count", "flag", "code", "day"],
        [120, 7, True, "01234", dt.date(2024, 1, 2)],
        [-2.25, -1, False, "=1+1", None],
    ]
    table = read_table(make_xlsx(tmp_path / "in.xlsx", rows), kind="xlsx")
    write_table_xlsx(table, tmp_path / "out.xlsx")
    sheet = openpyxl.load_workbook(tmp_path / "out.xlsx").active
    assert sheet is not None
    got = [[(c.value, c.data_type) for c in row] for row in sheet.iter_rows(min_row=2)]
    assert got == [
        [(120, "n"), (7, "n"), (True, "b"), ("01234", "s"), (dt.datetime(2024, 1, 2), "d")],
        [(-2.25, "n"), (-1, "n"), (False, "b"), ("=1+1", "s"), (None, "n")],
    ]
    assert sheet["A2"].number_format == "General" and sheet["E2"].is_date


def test_a_computed_float_written_as_csv_reads_back_as_the_same_double(tmp_path: Path) -> None:
    """The writer spells a double in up to 17 significant digits; the reader takes that text
    back as a number (not as text, as a 16-digit id would be)."""
    values = [0.1 + 0.2, 421.71000000000004, 1 / 3, 2.5]
    dest = tmp_path / "o.csv"
    write_csv(pl.DataFrame({"price": values, "id": ["1234567890123456", "2"] * 2}), dest)
    assert dest.read_text().splitlines()[1] == "0.30000000000000004,1234567890123456"
    back = read_table(dest, kind="csv")
    assert back.schema == pl.Schema({"price": pl.Float64, "id": pl.String})
    assert back["price"].to_list() == values
