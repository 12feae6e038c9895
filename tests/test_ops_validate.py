"""excel/validate: valid rows go on, invalid rows go to a side file with their reasons."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest
from pydantic import ValidationError

from chatflow.operations import load_all
from chatflow.operations.registry import StepFailed
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
