"""The upload inspection reports exactly the columns and row count a step later reads.

The inspection counts rows and names the header without typing a cell (and without polars);
the typed reader builds the whole table.  Both follow one layout rule, checked here on every
kind of messy file the project carries.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import xlsxwriter

from chatflow.failures import StepFailed
from chatflow.spreadsheets.inspection import inspect_file
from chatflow.spreadsheets.reading import read_table
from chatflow.spreadsheets.zip_parts import GateLimits
from tests.fixtures_util import HOSTILE, make_csv
from tests.spreadsheets.odd_workbooks import VARIANTS


def _messy_xlsx(path: Path) -> Path:
    """Blank leading rows and columns, numeric, boolean and date headers, a blank and a
    repeated header, error cells, empty strings, wholly empty rows between and after."""
    book = xlsxwriter.Workbook(str(path), {"strings_to_numbers": False})
    sheet = book.add_worksheet("Data")
    day = book.add_format({"num_format": "yyyy-mm-dd"})
    sheet.write_string(2, 1, "name")
    sheet.write_number(2, 2, 2024)
    sheet.write_number(2, 3, 1.5)
    sheet.write_boolean(2, 4, True)
    sheet.write_datetime(2, 5, dt.datetime(2024, 1, 2), day)
    sheet.write_string(2, 7, "name")
    sheet.write_string(3, 1, "Ann")
    sheet.write_formula(3, 2, "=1/0", None, "#DIV/0!")  # an error cell: empty
    sheet.write_string(4, 1, "")  # a row of empty strings only: dropped
    sheet.write_formula(5, 3, "=NA()", None, "#N/A")  # a row of an error only: dropped
    sheet.write_number(6, 8, 7)  # a cell beyond the header: a column with a generated name
    sheet.write_string(9, 2, " ")  # whitespace is a value
    book.add_worksheet("Later").write_string(0, 0, "x")
    book.close()
    return path


_CSVS = {
    "quoted_and_ragged": 'a,b,,a\n\n"x, y",1\n,,,\n"multi\nline",2,3,\n3\n',
    "trailing_delimiters": "h1;h2\n1;2;;\n;;\n4;\n",
    "lone_carriage_returns": "a,b\r1,2\r\r3,4\r",
    "blank_header_cells": ",\t,x\n1,2,3\n",
    "one_column": "name\nSmith, John\nDoe; Jane\n",
}


def _agree(path: Path, kind: str) -> None:
    info = inspect_file(path, kind)
    kind = info.get("kind", kind)
    try:
        table = read_table(path, kind=kind, sheet=info["sheets"][0] if info["sheets"] else None)
    except StepFailed as exc:
        assert exc.code == "empty_sheet"
        assert (info["columns"], info["row_count"]) == ([], 0)
        return
    assert (info["columns"], info["row_count"]) == (table.columns, table.height)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_odd_packages(tmp_path: Path, name: str) -> None:
    _agree(VARIANTS[name](tmp_path), "xlsx")


@pytest.mark.parametrize(
    "name",
    sorted(
        p.name
        for p in HOSTILE.iterdir()
        if p.name.startswith(
            ("control", "dimension", "empty_sheet", "header", "merged", "structure")
        )
        and p.suffix == ".xlsx"
        or (p.suffix == ".csv" and p.name not in {"csv_malformed.csv", "csv_empty.csv"})
    ),
)
def test_hostile_corpus_files_that_are_accepted(name: str) -> None:
    _agree(HOSTILE / name, "csv" if name.endswith(".csv") else "xlsx")


def test_a_messy_workbook(tmp_path: Path) -> None:
    path = _messy_xlsx(tmp_path / "messy.xlsx")
    _agree(path, "xlsx")
    info = inspect_file(path, "xlsx")
    assert info["columns"] == [
        "name", "2024", "1.5", "true", "2024-01-02", "column_6", "name_2", "column_8"
    ]  # fmt: skip
    assert (info["sheets"], info["row_count"]) == (["Data", "Later"], 3)


@pytest.mark.parametrize("name", sorted(_CSVS))
def test_messy_csv(tmp_path: Path, name: str) -> None:
    _agree(make_csv(tmp_path / f"{name}.csv", _CSVS[name]), "csv")


def test_the_cell_limit_stops_the_count(tmp_path: Path) -> None:
    path = make_csv(tmp_path / "big.csv", "a,b\n" + "1,2\n" * 600)
    with pytest.raises(StepFailed) as caught:
        inspect_file(path, "csv", limits=GateLimits(max_cells=1000))
    assert caught.value.code == "too_many_cells"
    assert inspect_file(path, "csv", limits=GateLimits(max_cells=1200))["row_count"] == 600
