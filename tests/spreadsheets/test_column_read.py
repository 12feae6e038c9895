"""The whole-column read (fastexcel) answers only where it gives exactly the per-cell read."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from chatflow.spreadsheets.inspection import inspect_file
from chatflow.spreadsheets.reading import read_table
from chatflow.spreadsheets.reading_columns import read_columns
from chatflow.spreadsheets.reading_workbook import read_workbook_cells
from tests.fixtures_util import make_csv, make_xlsx

DAY = dt.datetime(2024, 2, 29)
NULL_LIKE = ["NA", "n/a", "null", "nan", "NaN", "N/A", "#N/A", "None", "<NA>", "NULL"]


def _same_both_ways(path: Path) -> pl.DataFrame:
    table = read_table(path, kind="xlsx")
    assert_frame_equal(table, read_workbook_cells(path, "xlsx", None), check_exact=True)
    return table


def test_an_ordinary_sheet_is_read_by_whole_columns(tmp_path: Path) -> None:
    rows: list[list[Any]] = [
        ["id", "qty", "price", "when", "ok", "note"],
        ["007", 3, 1.25, DAY, True, "a"],
        ["12345", 4, 0.1 + 0.2, DAY + dt.timedelta(days=1), False, ""],
        [None, None, None, None, None, None],
        ["x", 5, 2.0, DAY, True, " "],
    ]
    path = make_xlsx(tmp_path / "t.xlsx", rows)
    assert read_columns(path, None) is not None  # the fast path answered
    table = _same_both_ways(path)
    assert table.schema == pl.Schema(
        {
            "id": pl.String,
            "qty": pl.Int64,
            "price": pl.Float64,
            "when": pl.Date,
            "ok": pl.Boolean,
            "note": pl.String,
        }
    )
    assert table.rows() == [
        ("007", 3, 1.25, DAY.date(), True, "a"),
        ("12345", 4, 0.3, dt.date(2024, 3, 1), False, None),
        ("x", 5, 2.0, DAY.date(), True, " "),
    ]


@pytest.mark.parametrize("text", NULL_LIKE)
def test_null_like_text_in_a_number_column_is_kept(tmp_path: Path, text: str) -> None:
    rows: list[list[Any]] = [["n", "b"], [1.5, True], [text, text], [None, False], [2, None]]
    path = make_xlsx(tmp_path / "t.xlsx", rows)
    # fastexcel reads "nan" in a number column as NaN, which sends it cell by cell; the rest is
    # rebuilt as text from the column read again as text
    assert (read_columns(path, None) is None) == (text.lower() == "nan")
    table = _same_both_ways(path)
    assert table.schema == pl.Schema({"n": pl.String, "b": pl.String})
    assert table["n"].to_list() == ["1.5", text, None, "2"]
    assert table["b"].to_list() == ["true", text, "false", None]


def test_null_like_text_in_a_date_column_is_kept(tmp_path: Path) -> None:
    path = make_xlsx(tmp_path / "t.xlsx", [["d", "e"], [DAY, 1], ["n/a", 2], [None, 3], [DAY, 4]])
    table = _same_both_ways(path)
    assert table["d"].to_list() == ["2024-02-29", "n/a", None, "2024-02-29"]


def test_a_row_holding_only_null_like_text_is_a_row(tmp_path: Path) -> None:
    path = make_xlsx(tmp_path / "t.xlsx", [["a", "b"], [1, 2], ["NA", None], [3, 4]])
    assert _same_both_ways(path)["a"].to_list() == ["1", "NA", "3"]


def test_numbers_with_blanks_stay_numbers(tmp_path: Path) -> None:
    path = make_xlsx(tmp_path / "t.xlsx", [["n", "d"], [1, DAY], [None, None], [2, None], [3, DAY]])
    assert read_columns(path, None) is not None
    table = _same_both_ways(path)
    assert table.schema == pl.Schema({"n": pl.Int64, "d": pl.Date})
    assert table["n"].to_list() == [1, 2, 3]


@pytest.mark.parametrize(
    "rows",
    [
        [["mixed"], [1], ["two"]],  # a column of two kinds
        [["a", None], [1, 2]],  # a blank header cell
        [["a", "a"], [1, 2]],  # a repeated header
        [["a", "a_1", "a"], [1, 2, 3]],
        [[1e-10], [1]],  # a number header fastexcel writes its own way
        [[1e20], [1]],
        [[True], [1]],  # a boolean header
        [[DAY], [1]],  # a date header
        [[None, "b"], ["", ""], [1, 2]],
    ],
)
def test_what_fastexcel_cannot_prove_is_read_cell_by_cell(
    tmp_path: Path, rows: list[list[Any]]
) -> None:
    path = make_xlsx(tmp_path / "t.xlsx", rows)
    assert read_columns(path, None) is None
    _same_both_ways(path)


def test_a_numeric_header_that_reads_the_same_is_kept(tmp_path: Path) -> None:
    path = make_xlsx(tmp_path / "t.xlsx", [[2024, "2025", 1.5], [1, 2, 3]])
    assert read_columns(path, None) is not None
    assert _same_both_ways(path).columns == ["2024", "2025", "1.5"]


def test_inspection_describes_csv_by_its_layout_without_typing(tmp_path: Path) -> None:
    path = make_csv(tmp_path / "t.csv", "a,a,\n1,01234,x\n\n2,5,\n")
    info = inspect_file(path, "csv")
    assert info == {"sheets": [], "columns": ["a", "a_2", "column_3"], "row_count": 2}
