"""excel/split-file and excel/convert: the files they write, read back."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import fastexcel
import openpyxl
import polars as pl
import pytest
from pydantic import ValidationError

from chatflow import filenames
from chatflow.failures import StepFailed
from chatflow.operations import load_all
from chatflow.operations.output_ops import MAX_GROUPS, part_file_names, part_sheet_names
from chatflow.spreadsheets.reading import read_table
from tests.step_harness import StepHarness

REGISTRY = load_all()

SALES = pl.DataFrame(
    {
        "region": ["north", "south", "north", None, "a/b"],
        "amount": [10, 5, 7, 1, 2],
    }
)


def validate(operation: str, arguments: dict[str, Any]) -> Any:
    op = REGISTRY.get(operation)
    assert op is not None
    return op.args_model.model_validate(arguments)


def test_split_by_column_into_files(tmp_path: Path) -> None:
    h = StepHarness(tmp_path, SALES, input_name="sales.xlsx")
    out = h.run("excel/split-file", {"by": "column", "column": "region"})
    names = ["sales_north.xlsx", "sales_south.xlsx", "sales_(blank).xlsx", "sales_a_b.xlsx"]
    assert [f.name for f in out.files] == names
    assert [read_table(f.path, kind="xlsx").rows() for f in out.files] == [
        [("north", 10), ("north", 7)],
        [("south", 5)],
        [(None, 1)],
        [("a/b", 2)],
    ]
    assert out.result == {
        "rows_in": 5,
        "groups": 4,
        "files": names,
        "parts": [
            {"value": "north", "file": "sales_north.xlsx", "rows": 2},
            {"value": "south", "file": "sales_south.xlsx", "rows": 1},
            {"value": "(blank)", "file": "sales_(blank).xlsx", "rows": 1},
            {"value": "a/b", "file": "sales_a_b.xlsx", "rows": 1},
        ],
    }
    assert out.passthrough and out.table is not None and out.table.rows() == SALES.rows()


def test_split_by_rows_into_sheets_and_csv_files(tmp_path: Path) -> None:
    h = StepHarness(tmp_path / "a", SALES)
    out = h.run(
        "excel/split-file", {"by": "row_count", "rows": 2, "as": "sheets", "output": "parts.xlsx"}
    )
    (book,) = out.files
    assert book.name == "parts.xlsx" and book.sheets == ["part1", "part2", "part3"]
    assert fastexcel.read_excel(book.path).sheet_names == ["part1", "part2", "part3"]
    assert [read_table(book.path, kind="xlsx", sheet=s).height for s in book.sheets] == [2, 2, 1]
    assert read_table(book.path, kind="xlsx", sheet="part3").rows() == [("a/b", 2)]
    csv = StepHarness(tmp_path / "b", SALES).run(
        "excel/split-file",
        {"by": "row_count", "rows": 3, "format": "csv", "name_prefix": "chunk"},
    )
    assert [f.name for f in csv.files] == ["chunk_part1.csv", "chunk_part2.csv"]
    assert read_table(csv.files[1].path, kind="csv").rows() == [(None, 1), ("a/b", 2)]
    assert csv.files[1].path.read_text().splitlines() == ["region,amount", ",1", "a/b,2"]


def test_part_names_are_valid_and_distinct() -> None:
    labels = ["A", "a", "x:y", "CON", " .. ", "\u202eevil", "é" * 300, "part2"]
    names = part_file_names(labels, "data", ".xlsx")
    assert names == [
        "data_A.xlsx",
        "data_a_2.xlsx",
        "data_x_y.xlsx",
        "data_CON.xlsx",
        "data_part5.xlsx",
        "data__evil.xlsx",
        f"data_{'é' * 80}.xlsx",
        "data_part2.xlsx",
    ]
    assert all(filenames.problem(n) is None for n in names)
    assert part_sheet_names(["History", "a" * 40, "a" * 40, "x[1]"]) == [
        "History_",
        "a" * 31,
        "a" * 29 + "_2",
        "x_1_",
    ]


def test_split_refusals(tmp_path: Path) -> None:
    many = pl.DataFrame({"k": [str(i) for i in range(MAX_GROUPS + 1)]})
    with pytest.raises(StepFailed) as caught:
        StepHarness(tmp_path / "a", many).run("excel/split-file", {"by": "column", "column": "k"})
    assert caught.value.code == "too_many_groups"
    with pytest.raises(StepFailed) as caught:
        StepHarness(tmp_path / "b", many).run("excel/split-file", {"by": "row_count", "rows": 1})
    assert caught.value.code == "too_many_groups"
    with pytest.raises(StepFailed) as caught:
        StepHarness(tmp_path / "c", SALES).run("excel/split-file", {"by": "column", "column": "x"})
    assert caught.value.code == "column_not_found"
    for bad in [
        {"by": "column"},
        {"by": "column", "column": "a", "rows": 2},
        {"by": "row_count", "rows": 0},
        {"by": "row_count", "rows": 2, "output": "x.xlsx"},
        {"by": "row_count", "rows": 2, "as": "sheets", "format": "csv"},
        {"by": "row_count", "rows": 2, "as": "sheets", "name_prefix": "p"},
        {"by": "row_count", "rows": 2, "as": "tabs"},
        {"by": "row_count", "rows": 2, "name_prefix": " .. "},
    ]:
        with pytest.raises(ValidationError):
            validate("excel/split-file", bad)
    args = validate("excel/split-file", {"by": "row_count", "rows": 2, "as": "sheets"})
    assert args.model_dump(mode="json")["as"] == "sheets"


def test_split_in_a_dry_run_writes_nothing(tmp_path: Path) -> None:
    h = StepHarness(tmp_path, SALES, dry_run=True)
    out = h.run("excel/split-file", {"by": "column", "column": "region"})
    assert [f.name for f in out.files] == [
        "data_north.xlsx",
        "data_south.xlsx",
        "data_(blank).xlsx",
        "data_a_b.xlsx",
    ]
    assert all(f.path == Path() for f in out.files)


# --- convert ------------------------------------------------------------------------------

RISKY = pl.DataFrame({"text": ["=1+1", "-14", "+1.5e3", "@SUM(A1)", "plain"], "n": [1] * 5})


def test_convert_csv_escapes_formulas(tmp_path: Path) -> None:
    out = StepHarness(tmp_path, RISKY).run("excel/convert", {"format": "csv"})
    (written,) = out.files
    assert written.name == "data_convert.csv" and written.kind == "csv"
    assert written.path.read_text(encoding="utf-8").splitlines() == [
        "text,n",
        "'=1+1,1",
        "-14,1",
        "+1.5e3,1",
        "'@SUM(A1),1",
        "plain,1",
    ]
    assert out.wrote_table and out.table is not None and out.table.rows() == RISKY.rows()
    assert out.result == {"format": "csv", "rows": 5, "columns": 2, "file": "data_convert.csv"}


def test_convert_csv_options(tmp_path: Path) -> None:
    df = pl.DataFrame({"name": ["Müller", "=x"], "city": ["Köln", "Bonn"]})
    out = StepHarness(tmp_path, df).run(
        "excel/convert",
        {
            "format": "csv",
            "delimiter": ";",
            "encoding": "cp1252",
            "escape_formulas": False,
            "output": "export",
        },
    )
    (written,) = out.files
    assert written.name == "export.csv"
    assert written.path.read_bytes() == "name;city\nMüller;Köln\n=x;Bonn\n".encode("cp1252")
    bom = StepHarness(tmp_path / "b", df).run(
        "excel/convert", {"format": "csv", "encoding": "utf-8-sig"}
    )
    assert bom.files[0].path.read_bytes().startswith(b"\xef\xbb\xbfname,city")


def test_convert_parquet_and_xlsx(tmp_path: Path) -> None:
    h = StepHarness(tmp_path, RISKY)
    parquet = h.run("excel/convert", {"format": "parquet", "output": "risky.parquet"})
    assert parquet.files[0].name == "risky.parquet"
    assert pl.read_parquet(parquet.files[0].path).rows() == RISKY.rows()
    xlsx = h.run("excel/convert", {"format": "xlsx"})
    assert xlsx.files[0].name == "data_convert.xlsx"
    assert read_table(xlsx.files[0].path, kind="xlsx").rows() == RISKY.rows()


def test_convert_arguments() -> None:
    for bad in [
        {},
        {"format": "xls"},
        {"format": "csv", "delimiter": "::"},
        {"format": "csv", "encoding": "utf-16"},
        {"format": "xlsx", "delimiter": ";"},
        {"format": "parquet", "escape_formulas": False},
        {"format": "csv", "output": "out.xlsx"},
        {"format": "csv", "output": "con.csv"},
    ]:
        with pytest.raises(ValidationError):
            validate("excel/convert", bad)


# --- types --------------------------------------------------------------------------------

TYPED = pl.DataFrame(
    {
        "amount": [120.0, 3.5, 120.0, None, -0.25],
        "qty": [1, 2, 3, 4, None],
        "paid": [True, False, True, None, False],
        "day": [dt.date(2024, 1, 31), None, dt.date(2024, 2, 1), dt.date(2024, 2, 1), None],
        "at": [dt.datetime(2024, 1, 31, 9, 30), None, None, None, dt.datetime(2024, 1, 1)],
        "zip": ["01234", "120", None, "3.5", "x"],
    }
)
TYPED_SCHEMA = {
    "amount": pl.Float64,
    "qty": pl.Int64,
    "paid": pl.Boolean,
    "day": pl.Date,
    "at": pl.Datetime("us"),
    "zip": pl.String,
}


def test_split_by_typed_columns_names_parts_by_text_form(tmp_path: Path) -> None:
    h = StepHarness(tmp_path / "a", TYPED)
    out = h.run("excel/split-file", {"by": "column", "column": "amount", "format": "csv"})
    assert [p["value"] for p in out.result["parts"]] == ["120", "3.5", "(blank)", "-0.25"]
    assert [f.name for f in out.files] == [
        "data_120.csv",
        "data_3.5.csv",
        "data_(blank).csv",
        "data_-0.25.csv",
    ]
    assert out.files[0].path.read_text().splitlines() == [
        "amount,qty,paid,day,at,zip",
        "120,1,true,2024-01-31,2024-01-31 09:30:00,01234",
        "120,3,true,2024-02-01,,",
    ]
    assert out.table is not None and out.table.schema == TYPED_SCHEMA
    by_flag = StepHarness(tmp_path / "b", TYPED).run(
        "excel/split-file", {"by": "column", "column": "paid", "as": "sheets"}
    )
    (book,) = by_flag.files
    assert book.sheets == ["true", "false", "(blank)"]
    part = read_table(book.path, kind="xlsx", sheet="false")
    # The reader's rule: a column without values is text, one of midnights holds dates.
    assert part.schema == {**TYPED_SCHEMA, "day": pl.String, "at": pl.Date}
    assert part.rows() == [
        (3.5, 2, False, None, None, "120"),
        (-0.25, None, False, None, dt.date(2024, 1, 1), "x"),
    ]
    by_day = StepHarness(tmp_path / "c", TYPED).run(
        "excel/split-file", {"by": "column", "column": "day"}
    )
    assert [p["value"] for p in by_day.result["parts"]] == ["2024-01-31", "(blank)", "2024-02-01"]


def test_convert_keeps_types_in_xlsx_csv_and_parquet(tmp_path: Path) -> None:
    h = StepHarness(tmp_path, TYPED)
    xlsx = h.run("excel/convert", {"format": "xlsx"})
    sheet = openpyxl.load_workbook(xlsx.files[0].path).active
    assert sheet is not None
    cells = [[(c.value, c.data_type) for c in row] for row in sheet.iter_rows(min_row=2)]
    assert cells[0] == [
        (120, "n"),
        (1, "n"),
        (True, "b"),
        (dt.datetime(2024, 1, 31), "d"),
        (dt.datetime(2024, 1, 31, 9, 30), "d"),
        ("01234", "s"),
    ]
    assert cells[1][0] == (3.5, "n") and cells[1][5] == ("120", "s")
    assert read_table(xlsx.files[0].path, kind="xlsx").schema == TYPED_SCHEMA
    assert read_table(xlsx.files[0].path, kind="xlsx").rows() == TYPED.rows()
    csv = h.run("excel/convert", {"format": "csv"})
    assert csv.files[0].path.read_text().splitlines() == [
        "amount,qty,paid,day,at,zip",
        "120,1,true,2024-01-31,2024-01-31 09:30:00,01234",
        "3.5,2,false,,,120",
        "120,3,true,2024-02-01,,",
        ",4,,2024-02-01,,3.5",
        "-0.25,,false,,2024-01-01 00:00:00,x",
    ]
    back = read_table(csv.files[0].path, kind="csv")
    assert back.schema == {**TYPED_SCHEMA, "paid": pl.String}  # csv has no booleans
    assert back["amount"].to_list() == TYPED["amount"].to_list()
    parquet = h.run("excel/convert", {"format": "parquet"})
    stored = pl.read_parquet(parquet.files[0].path)
    assert stored.schema == TYPED_SCHEMA and stored.rows() == TYPED.rows()
    assert parquet.table is not None and parquet.table.schema == TYPED_SCHEMA
