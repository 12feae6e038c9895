"""excel/validate: valid rows go on, invalid rows go to a side file with their reasons."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import openpyxl
import polars as pl
import pytest
from pydantic import ValidationError

from chatflow.failures import StepFailed
from chatflow.operations import load_all
from chatflow.operations.validate import validate_rows
from chatflow.spreadsheets.reading import read_table
from tests.step_harness import StepHarness

REGISTRY = load_all()

CUSTOMERS = pl.DataFrame(
    {
        "id": ["1", "2", "3", "2", "5"],
        "postal_code": ["12345", "1234", None, "54321", "99999"],
        "email": ["a@x.io", None, "c@x.io", "  ", "e@x.io"],
        "status": ["new", "old", "new", "new", "gone"],
        "amount": ["10", "-1", "abc", "5", "100.5"],
    }
)
RULES = [
    {"column": "id", "unique": True},
    {"column": "postal_code", "regex": "\\d{5}"},
    {"column": "email", "required": True, "max_length": 20},
    {"column": "status", "allowed": ["new", "old"]},
    {"column": "amount", "min": 0, "max": 100},
]


def validate(arguments: dict[str, Any]) -> Any:
    op = REGISTRY.get("excel/validate")
    assert op is not None
    return op.args_model.model_validate(arguments)


def test_valid_rows_continue_and_invalid_rows_are_written(tmp_path: Path) -> None:
    h = StepHarness(tmp_path, CUSTOMERS, input_name="customers.xlsx")
    out = h.run("excel/validate", {"rules": RULES})
    assert out.table is not None
    assert out.table.rows() == [("1", "12345", "a@x.io", "new", "10")]
    (side,) = out.files
    assert side.name == "customers_invalid.xlsx"
    invalid = read_table(side.path, kind="xlsx")
    assert invalid.columns == [*CUSTOMERS.columns, "_errors"]
    assert invalid.rows() == [
        (
            "2",
            "1234",
            None,
            "old",
            "-1",
            "id: duplicate value; postal_code: does not match \\d{5}; email: required; "
            "amount: less than 0",
        ),
        ("3", None, "c@x.io", "new", "abc", "amount: not a number"),
        ("2", "54321", "  ", "new", "5", "id: duplicate value; email: required"),
        (
            "5",
            "99999",
            "e@x.io",
            "gone",
            "100.5",
            "status: not an allowed value; amount: more than 100",
        ),
    ]
    assert out.result == {
        "rows_in": 5,
        "valid": 1,
        "invalid": 4,
        "by_rule": [
            {"column": "id", "check": "unique", "failures": 2},
            {"column": "postal_code", "check": "regex", "failures": 1},
            {"column": "email", "check": "required", "failures": 2},
            {"column": "email", "check": "max_length", "failures": 0},
            {"column": "status", "check": "allowed", "failures": 1},
            {"column": "amount", "check": "number", "failures": 1},
            {"column": "amount", "check": "min", "failures": 1},
            {"column": "amount", "check": "max", "failures": 1},
        ],
        "invalid_file": "customers_invalid.xlsx",
    }
    assert not out.wrote_table  # the valid rows are the run's table, written at its end


def test_no_invalid_rows_means_no_side_file(tmp_path: Path) -> None:
    out = StepHarness(tmp_path, CUSTOMERS).run(
        "excel/validate",
        {"rules": [{"column": "id", "required": True, "min_length": 1}], "output": "ok.csv"},
    )
    assert [f.name for f in out.files] == ["ok.csv"]
    assert out.result is not None and out.result["invalid_file"] is None
    assert out.wrote_table and out.table is not None and out.table.height == 5


def test_named_side_file_and_length_checks() -> None:
    df = pl.DataFrame({"code": ["ab", "abcd", "abc", None], "_errors": ["x", "y", "z", "w"]})
    rules = validate(
        {"rules": [{"column": "code", "min_length": 3, "max_length": 3, "regex": "[a-z]+"}]}
    ).rules
    valid, invalid, _ = validate_rows(df, rules)
    assert valid.rows() == [("abc", "z"), (None, "w")]
    assert invalid.columns == ["code", "_errors", "_errors_2"]
    assert invalid.rows() == [
        ("ab", "x", "code: shorter than 3 characters"),
        ("abcd", "y", "code: longer than 3 characters"),
    ]


def test_fail_on_invalid(tmp_path: Path) -> None:
    with pytest.raises(StepFailed) as caught:
        StepHarness(tmp_path, CUSTOMERS).run(
            "excel/validate", {"rules": RULES, "fail_on_invalid": True}
        )
    assert caught.value.code == "validation_failed"
    assert caught.value.details["invalid"] == 4
    assert caught.value.details["examples"][1] == "amount: not a number"


def test_validate_refusals(tmp_path: Path) -> None:
    with pytest.raises(StepFailed) as caught:
        StepHarness(tmp_path, CUSTOMERS).run(
            "excel/validate", {"rules": [{"column": "zip", "required": True}]}
        )
    assert caught.value.code == "column_not_found"
    for bad in [
        {"rules": []},
        {"rules": [{"column": "a"}]},
        {"rules": [{"column": "a", "regex": "("}]},
        {"rules": [{"column": "a", "min": 5, "max": 1}]},
        {"rules": [{"column": "a", "min_length": -1}]},
        {"rules": [{"column": "a", "allowed": []}]},
        {"rules": [{"column": "a", "required": True, "pattern": "x"}]},
        {"rules": [{"column": "a", "required": True}], "invalid_output": "bad/name.xlsx"},
    ]:
        with pytest.raises(ValidationError):
            validate(bad)


TYPED = pl.DataFrame(
    {
        "id": [1, 2, 3, 4, 5, 6],
        "amount": [100.0, 9.5, None, 1000.0, -20.0, 100.0],
        "qty": [3, None, 10, 0, 7, 2],
        "paid": [True, False, None, True, False, True],
        "day": [
            dt.date(2024, 2, 29),
            dt.date(2024, 3, 1),
            dt.date(2024, 1, 15),
            None,
            dt.date(2023, 12, 31),
            dt.date(2024, 3, 1),
        ],
        "code": ["007", "0100", "12", None, "5", "0100"],
    }
)
TYPED_SCHEMA = {
    "id": pl.Int64,
    "amount": pl.Float64,
    "qty": pl.Int64,
    "paid": pl.Boolean,
    "day": pl.Date,
    "code": pl.String,
}


def test_typed_columns_are_checked_by_value(tmp_path: Path) -> None:
    rules = [
        {"column": "amount", "min": 0, "max": 100},
        {"column": "qty", "allowed": [0, "3", 10.0, 7]},
        {"column": "paid", "allowed": [True]},
        {"column": "day", "regex": "2024-.*"},
        {"column": "code", "regex": "[0-9]{2,4}", "unique": True},
        {"column": "id", "max_length": 1},
    ]
    out = StepHarness(tmp_path, TYPED, input_name="t.xlsx").run("excel/validate", {"rules": rules})
    assert out.table is not None
    assert out.table.schema == TYPED_SCHEMA
    assert out.table["id"].to_list() == [1, 3]
    (side,) = out.files
    invalid = read_table(side.path, kind="xlsx")
    assert invalid.rows() == [
        (
            2,
            9.5,
            None,
            False,
            dt.date(2024, 3, 1),
            "0100",
            "paid: not an allowed value; code: duplicate value",
        ),
        (4, 1000.0, 0, True, None, None, "amount: more than 100"),
        (
            5,
            -20.0,
            7,
            False,
            dt.date(2023, 12, 31),
            "5",
            "amount: less than 0; paid: not an allowed value; day: does not match 2024-.*; "
            "code: does not match [0-9]{2,4}",
        ),
        (
            6,
            100.0,
            2,
            True,
            dt.date(2024, 3, 1),
            "0100",
            "qty: not an allowed value; code: duplicate value",
        ),
    ]
    assert invalid.schema == {**TYPED_SCHEMA, "_errors": pl.String}
    sheet = openpyxl.load_workbook(side.path).active
    assert sheet is not None
    assert [c.data_type for c in sheet[2]] == ["n", "n", "n", "b", "d", "s", "s"]
    assert sheet["B2"].value == 9.5 and sheet["A2"].value == 2
    assert out.result is not None
    assert {(r["column"], r["check"]): r["failures"] for r in out.result["by_rule"]} == {
        ("amount", "number"): 0,
        ("amount", "min"): 1,
        ("amount", "max"): 1,
        ("qty", "allowed"): 1,
        ("paid", "allowed"): 2,
        ("day", "regex"): 1,
        ("code", "regex"): 1,
        ("code", "unique"): 2,
        ("id", "max_length"): 0,
    }


def test_min_max_read_a_text_column_as_numbers(tmp_path: Path) -> None:
    df = pl.DataFrame({"n": ["10", "n/a", "-1", None, "1e3"]})
    rules = validate({"rules": [{"column": "n", "min": 0, "max": 100}]}).rules
    valid, invalid, _ = validate_rows(df, rules)
    assert valid.rows() == [("10",), (None,)]
    assert invalid.rows() == [
        ("n/a", "n: not a number"),
        ("-1", "n: less than 0"),
        ("1e3", "n: more than 100"),
    ]


@pytest.mark.parametrize(("column", "kind"), [("day", "date"), ("paid", "boolean")])
def test_min_max_of_dates_and_booleans_are_refused(tmp_path: Path, column: str, kind: str) -> None:
    with pytest.raises(StepFailed) as caught:
        StepHarness(tmp_path, TYPED).run(
            "excel/validate", {"rules": [{"column": column, "min": 0}]}
        )
    assert caught.value.code == "column_type_mismatch"
    assert caught.value.details == {"column": column, "type": kind}
    assert caught.value.message.startswith(f"Column '{column}' holds {kind} values; min and max")
