"""excel/extract-columns-to-file: the pure function, its arguments, and the step end to end."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import openpyxl
import polars as pl
import pytest
from pydantic import ValidationError

from chatflow.failures import StepFailed
from chatflow.operations.extract_columns import ExtractColumnsArgs, extract_columns
from chatflow.operations.registry import registry
from chatflow.spreadsheets.reading import read_table
from tests.fixtures_util import make_xlsx
from tests.step_harness import StepHarness

PEOPLE = pl.DataFrame(
    {
        "name": ["ann", "bob", "cy", "dee", "eve"],
        "postal_code": ["01234", "98765", "01234", "00501", "98765"],
        "city": ["A", "B", "A", "C", "B"],
    }
)


def test_columns_come_out_in_the_requested_order() -> None:
    out = extract_columns(PEOPLE, ["city", "name"], remove_duplicates=False)
    assert out.columns == ["city", "name"]
    assert out.rows() == list(zip(PEOPLE["city"], PEOPLE["name"], strict=True))


def test_remove_duplicates_keeps_the_first_occurrence_in_order() -> None:
    out = extract_columns(PEOPLE, ["postal_code"], remove_duplicates=True)
    assert out["postal_code"].to_list() == ["01234", "98765", "00501"]
    pairs = extract_columns(PEOPLE, ["postal_code", "city"], remove_duplicates=True)
    assert pairs.rows() == [("01234", "A"), ("98765", "B"), ("00501", "C")]
    kept = extract_columns(PEOPLE, ["postal_code"], remove_duplicates=False)
    assert kept.height == 5


def test_duplicates_with_nulls() -> None:
    df = pl.DataFrame({"a": [None, "x", None, "x", "y"]})
    assert extract_columns(df, ["a"], True)["a"].to_list() == [None, "x", "y"]


def test_missing_column_message_lists_what_exists() -> None:
    with pytest.raises(StepFailed) as caught:
        extract_columns(PEOPLE, ["zip"], remove_duplicates=False)
    error = caught.value
    assert error.code == "column_not_found"
    assert error.message == "Column 'zip' not found; available columns: name, postal_code, city"
    assert error.details == {"missing": ["zip"], "available": ["name", "postal_code", "city"]}


def test_several_missing_columns_and_a_near_miss() -> None:
    with pytest.raises(StepFailed) as caught:
        extract_columns(PEOPLE, ["Postal_Code ", "name", "zip"], remove_duplicates=False)
    assert caught.value.message.startswith("Columns 'Postal_Code ', 'zip' not found;")
    assert "did you mean 'postal_code'?" in caught.value.message
    wide = pl.DataFrame({f"c{i}": [1] for i in range(80)})
    with pytest.raises(StepFailed) as caught:
        extract_columns(wide, ["nope"], remove_duplicates=False)
    assert caught.value.message.endswith("c49, ... (80 in all)")


def test_arguments() -> None:
    args = ExtractColumnsArgs.model_validate({"columns": ["b", "a"]})
    assert (args.columns, args.remove_duplicates, args.sheet, args.output) == (
        ["b", "a"],
        False,
        None,
        None,
    )
    for bad in [
        {},
        {"columns": []},
        {"columns": "a"},
        {"columns": ["a", "a"]},
        {"columns": ["a"], "x": 1},
    ]:
        with pytest.raises(ValidationError):
            ExtractColumnsArgs.model_validate(bad)


def test_registered_with_a_valid_example() -> None:
    operation = registry.get("excel/extract-columns-to-file")
    assert operation is not None
    assert operation.example == {"columns": ["postal_code"], "remove_duplicates": True}
    assert operation.args_model is ExtractColumnsArgs
    assert operation.json_schema()["required"] == ["columns"]
    assert operation.input_columns is not None
    assert operation.input_columns(ExtractColumnsArgs(columns=["b", "a"])) == ["b", "a"]


def test_the_step_reports_reads_and_writes(tmp_path: Path) -> None:
    harness = StepHarness(tmp_path, PEOPLE)
    output = harness.run(
        "excel/extract-columns-to-file", {"columns": ["postal_code"], "remove_duplicates": True}
    )
    assert harness.reports == [
        (0, "Starting step execution"),
        (25, "Read 5 rows"),
        (50, "Processing column 'postal_code'"),
        (75, "Writing 3 rows"),
        (100, "Step completed successfully"),
    ]
    assert output.result == {"rows_in": 5, "rows_out": 3, "columns": ["postal_code"]}
    assert output.table is not None and output.table["postal_code"].to_list() == [
        "01234",
        "98765",
        "00501",
    ]
    (written,) = output.files
    assert written.name == "data_extract-columns.xlsx"
    assert written.sha256 == hashlib.sha256(written.path.read_bytes()).hexdigest()
    sheet = openpyxl.load_workbook(written.path).active
    assert sheet is not None
    assert [c.value for c in sheet["A"]] == ["postal_code", "01234", "98765", "00501"]
    assert {c.data_type for c in sheet["A"]} == {"s"}


def test_the_step_names_several_columns_and_fails_before_processing(tmp_path: Path) -> None:
    harness = StepHarness(tmp_path, PEOPLE)
    out = harness.run(
        "excel/extract-columns-to-file", {"columns": ["city", "name"], "output": "mine.xlsx"}
    )
    assert harness.reports[2] == (50, "Processing columns 'city', 'name'")
    assert [f.name for f in out.files] == ["mine.xlsx"]
    failing = StepHarness(tmp_path / "2", PEOPLE)
    with pytest.raises(StepFailed) as caught:
        failing.run("excel/extract-columns-to-file", {"columns": ["postal_code", "zip"]})
    assert caught.value.code == "column_not_found"
    assert [p for p, _ in failing.reports] == [0, 25] and failing.files.written == []


def test_a_named_sheet_is_read_from_the_input_file(tmp_path: Path) -> None:
    harness = StepHarness(tmp_path, PEOPLE)
    harness.files.current = None
    with pytest.raises(StepFailed) as caught:
        harness.run("excel/extract-columns-to-file", {"columns": ["name"], "sheet": "Nope"})
    assert caught.value.code == "sheet_not_found"


def test_end_to_end_from_an_xlsx_file(tmp_path: Path) -> None:
    source = make_xlsx(
        tmp_path / "data.xlsx",
        [
            ["name", "postal_code", "city"],
            ["a", "01234", "X"],
            ["b", "01234", "Y"],
            ["c", "7", "Z"],
        ],
    )
    harness = StepHarness(tmp_path, read_table(source, kind="xlsx"))
    harness.files.current = None  # the first step of a run reads the file itself
    output = harness.run(
        "excel/extract-columns-to-file", {"columns": ["postal_code"], "remove_duplicates": True}
    )
    (written,) = output.files
    assert read_table(written.path, kind="xlsx")["postal_code"].to_list() == ["01234", "7"]


def test_typed_columns_stay_typed_in_the_table_and_the_file(tmp_path: Path) -> None:
    table = pl.DataFrame(
        {
            "id": [1, 2, 1, 3],
            "amount": [120.0, 3.5, 120.0, None],
            "paid": [True, False, True, None],
            "day": [dt.date(2024, 1, 31), None, dt.date(2024, 1, 31), None],
            "zip": ["01234", "120", "01234", None],
        }
    )
    harness = StepHarness(tmp_path, table)
    out = harness.run(
        "excel/extract-columns-to-file",
        {"columns": ["zip", "day", "paid", "amount", "id"], "remove_duplicates": True},
    )
    assert out.table is not None
    assert out.table.schema == {
        "zip": pl.String,
        "day": pl.Date,
        "paid": pl.Boolean,
        "amount": pl.Float64,
        "id": pl.Int64,
    }
    assert out.table.rows() == [
        ("01234", dt.date(2024, 1, 31), True, 120.0, 1),
        ("120", None, False, 3.5, 2),
        (None, None, None, None, 3),
    ]
    sheet = openpyxl.load_workbook(out.files[0].path).active
    assert sheet is not None
    assert [(c.value, c.data_type) for c in sheet[2]] == [
        ("01234", "s"),
        (dt.datetime(2024, 1, 31), "d"),
        (True, "b"),
        (120, "n"),
        (1, "n"),
    ]
    assert [(c.value, c.data_type) for c in sheet[3]][::2] == [("120", "s"), (False, "b"), (2, "n")]
    assert read_table(out.files[0].path, kind="xlsx").schema == out.table.schema
