"""excel/inspect, excel/preview, excel/profile-columns, excel/value-counts and type inference."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from pydantic import ValidationError

from chatflow.failures import StepFailed
from chatflow.operations import load_all
from chatflow.operations.column_types import infer_types, text_value_kinds
from chatflow.operations.inspect_ops import value_counts
from chatflow.spreadsheets.reading import read_table
from tests.fixtures_util import make_xlsx
from tests.step_harness import StepHarness

REGISTRY = load_all()

PEOPLE = pl.DataFrame(
    {
        "name": ["ann", "bob", "cy", "dee", "eve"],
        "age": [34, 28, None, 41, 28],
        "postal_code": ["01234", "98765", "01234", None, "01234"],
        "joined": [dt.date(2024, 1, 5), dt.date(2023, 12, 31), None, None, dt.date(2024, 2, 29)],
        "score": [1.5, 2.0, -0.25, 100.0, 3.0],
    }
)


def validate(operation: str, arguments: dict[str, Any]) -> Any:
    op = REGISTRY.get(operation)
    assert op is not None
    return op.args_model.model_validate(arguments)


def test_types_are_the_read_types() -> None:
    df = pl.DataFrame(
        {
            "int": [1, -2, None],
            "float": [1.5, None, 2.0],
            "bool": [True, None, False],
            "date": [dt.date(2024, 1, 5), None, None],
            "datetime": [dt.datetime(2024, 1, 5, 10, 30), None, None],
            "time": [dt.time(8, 30), None, None],
            "text": ["1", "a", None],
            "empty": pl.Series([None] * 3, dtype=pl.String),
        }
    )
    assert infer_types(df) == {
        "int": "integer",
        "float": "float",
        "bool": "boolean",
        "date": "date",
        "datetime": "datetime",
        "time": "time",
        "text": "text",
        "empty": "empty",
    }


def test_text_value_kinds_say_why_a_column_is_text() -> None:
    df = pl.DataFrame(
        {
            "mixed": ["120", "-3.5", "n/a", "true", "2024-05-01", None, "1e+20"],
            "codes": ["01234", "98765", None, None, None, None, None],
            "words": ["a", "b", None, None, None, None, None],
            "n": [1, 2, 3, 4, 5, 6, 7],
        }
    )
    # postal codes (some without a leading zero) and a column of one kind are not listed
    assert text_value_kinds(df, ["mixed", "codes", "words", "n"]) == {
        "mixed": {"number": 3, "boolean": 1, "date": 1, "text": 1},
    }


def test_inspect_describes_and_hands_the_table_on(tmp_path: Path) -> None:
    h = StepHarness(tmp_path, PEOPLE)
    out = h.run("excel/inspect", {})
    assert out.result == {
        "input": "data.xlsx",
        "sheets": ["Sheet1"],
        "sheet": None,
        "row_count": 5,
        "column_count": 5,
        "columns": [
            {"name": "name", "type": "text", "nulls": 0},
            {"name": "age", "type": "integer", "nulls": 1},
            {"name": "postal_code", "type": "text", "nulls": 1},
            {"name": "joined", "type": "date", "nulls": 2},
            {"name": "score", "type": "float", "nulls": 0},
        ],
        "columns_truncated": False,
    }
    assert out.passthrough and not out.wrote_table and out.files == []
    assert out.table is not None and out.table.rows() == PEOPLE.rows()
    assert out.table.schema == PEOPLE.schema
    assert [p for p, _ in h.reports] == [0, 25, 50, 75, 100]
    assert h.reports[-1] == (100, "5 rows, 5 columns")


def test_inspect_and_profile_report_a_mixed_xlsx_column(tmp_path: Path) -> None:
    h = StepHarness(tmp_path, PEOPLE)
    rows: list[list[Any]] = [["amount", "flag"], [120, True], ["n/a", False], [3.5, None]]
    make_xlsx(h.files.input_path, rows)
    out = h.run("excel/inspect", {})
    assert out.result is not None
    assert out.result["columns"] == [
        {"name": "amount", "type": "text", "nulls": 0, "mixed": {"number": 2, "text": 1}},
        {"name": "flag", "type": "boolean", "nulls": 1},
    ]
    profiled = h.run("excel/profile-columns", {"columns": ["amount"]})
    assert profiled.result is not None
    (amount,) = profiled.result["columns"]
    assert (amount["type"], amount["mixed"], amount["min"], amount["max"]) == (
        "text",
        {"number": 2, "text": 1},
        "120",
        "n/a",
    )


def test_inspect_a_csv_input_has_no_sheets(tmp_path: Path) -> None:
    out = StepHarness(tmp_path, PEOPLE, input_name="people.csv").run("excel/inspect", {})
    assert out.result is not None
    assert (out.result["input"], out.result["sheets"], out.result["row_count"]) == (
        "people.csv",
        [],
        5,
    )
    # the csv rule types the same columns the same way
    assert [c["type"] for c in out.result["columns"]] == [
        "text",
        "integer",
        "text",
        "date",
        "float",
    ]


def test_inspect_caps_the_detailed_columns(tmp_path: Path) -> None:
    wide = pl.DataFrame({f"c{i}": ["1"] for i in range(60)})
    out = StepHarness(tmp_path, wide).run("excel/inspect", {})
    assert out.result is not None
    assert len(out.result["columns"]) == 50
    assert (out.result["column_count"], out.result["columns_truncated"]) == (60, True)


def test_inspect_another_sheet_leaves_the_table_alone(tmp_path: Path) -> None:
    h = StepHarness(tmp_path, PEOPLE)
    make_xlsx(h.files.input_path, {"First": [["a"], ["x"]], "Second": [["n", "m"], [1, 2.5]]})
    h.files.current = PEOPLE.head(2)  # as if an earlier step had handed this on
    out = h.run("excel/inspect", {"sheet": "Second"})
    assert out.result is not None
    assert (out.result["sheets"], out.result["sheet"]) == (["First", "Second"], "Second")
    assert out.result["columns"] == [
        {"name": "n", "type": "integer", "nulls": 0},
        {"name": "m", "type": "float", "nulls": 0},
    ]
    assert out.table is not None and out.table.rows() == PEOPLE.head(2).rows()


def test_preview(tmp_path: Path) -> None:
    df = PEOPLE.with_columns(pl.Series("note", ["x" * 1500, None, "z", "", "q"]))
    out = StepHarness(tmp_path, df.head(3)).run("excel/preview", {"rows": 2})
    assert out.result == {
        "columns": ["name", "age", "postal_code", "joined", "score", "note"],
        "types": ["text", "integer", "text", "date", "float", "text"],
        "rows": [
            ["ann", 34, "01234", "2024-01-05", 1.5, "x" * 999 + "…"],
            ["bob", 28, "98765", "2023-12-31", 2, None],
        ],
        "row_count": 3,
        "rows_shown": 2,
        "column_count": 6,
        "columns_truncated": False,
    }
    assert out.passthrough and out.table is not None and out.table.height == 3
    assert validate("excel/preview", {}).rows == 20
    for bad in [{"rows": 0}, {"rows": 1001}, {"rows": "many"}, {"row": 5}]:
        with pytest.raises(ValidationError):
            validate("excel/preview", bad)


def test_profile_columns(tmp_path: Path) -> None:
    out = StepHarness(tmp_path, PEOPLE).run(
        "excel/profile-columns", {"columns": ["age", "postal_code", "joined", "score"]}
    )
    assert out.result == {
        "row_count": 5,
        "columns": [
            {
                "name": "age",
                "type": "integer",
                "nulls": 1,
                "distinct": 3,
                "min": 28,
                "max": 41,
                "mean": 32.75,
                "top_values": [
                    {"value": 28, "count": 2},
                    {"value": 34, "count": 1},
                    {"value": 41, "count": 1},
                ],
            },
            {
                "name": "postal_code",
                "type": "text",
                "nulls": 1,
                "distinct": 2,
                "min": "01234",
                "max": "98765",
                "mean": None,
                "top_values": [{"value": "01234", "count": 3}, {"value": "98765", "count": 1}],
            },
            {
                "name": "joined",
                "type": "date",
                "nulls": 2,
                "distinct": 3,
                "min": "2023-12-31",
                "max": "2024-02-29",
                "mean": None,
                "top_values": [
                    {"value": "2023-12-31", "count": 1},
                    {"value": "2024-01-05", "count": 1},
                    {"value": "2024-02-29", "count": 1},
                ],
            },
            {
                "name": "score",
                "type": "float",
                "nulls": 0,
                "distinct": 5,
                "min": -0.25,
                "max": 100.0,
                "mean": 21.25,
                "top_values": [
                    {"value": -0.25, "count": 1},
                    {"value": 1.5, "count": 1},
                    {"value": 2.0, "count": 1},
                    {"value": 3.0, "count": 1},
                    {"value": 100.0, "count": 1},
                ],
            },
        ],
        "columns_truncated": False,
    }
    assert out.passthrough


def test_profile_columns_failures(tmp_path: Path) -> None:
    with pytest.raises(StepFailed) as caught:
        StepHarness(tmp_path, PEOPLE).run("excel/profile-columns", {"columns": ["zip"]})
    assert caught.value.code == "column_not_found"
    for bad in [
        {"columns": []},
        {"columns": ["a", "a"]},
        {"columns": [f"c{i}" for i in range(51)]},
    ]:
        with pytest.raises(ValidationError):
            validate("excel/profile-columns", bad)


def test_value_counts_table_and_result(tmp_path: Path) -> None:
    h = StepHarness(tmp_path, PEOPLE)
    out = h.run("excel/value-counts", {"column": "postal_code", "include_percent": True})
    assert out.table is not None
    assert out.table.columns == ["postal_code", "count", "percent"]
    assert out.table.rows() == [("01234", 3, 60.0), ("98765", 1, 20.0), (None, 1, 20.0)]
    assert out.result == {
        "column": "postal_code",
        "type": "text",
        "rows_in": 5,
        "distinct": 3,
        "rows_out": 3,
        "top": [
            {"value": "01234", "count": 3, "percent": 60.0},
            {"value": "98765", "count": 1, "percent": 20.0},
            {"value": None, "count": 1, "percent": 20.0},
        ],
    }
    assert not out.passthrough and not out.wrote_table


def test_value_counts_options() -> None:
    df = pl.DataFrame({"count": ["b", "a", None, "b", "c", "a", None, None]})
    out = value_counts(df, "count", include_nulls=False, include_percent=True)
    assert out.columns == ["count", "count_2", "percent"]
    assert out.rows() == [("a", 2, 40.0), ("b", 2, 40.0), ("c", 1, 20.0)]
    top = value_counts(df, "count", top_n=2)
    assert top.rows() == [(None, 3), ("a", 2)]
    with pytest.raises(StepFailed) as caught:
        value_counts(df, "Count")
    assert caught.value.code == "column_not_found"


def test_value_counts_writes_when_asked(tmp_path: Path) -> None:
    out = StepHarness(tmp_path, PEOPLE).run(
        "excel/value-counts", {"column": "age", "top_n": 1, "output": "ages.csv"}
    )
    assert out.wrote_table
    (written,) = out.files
    assert written.name == "ages.csv"
    counts = read_table(written.path, kind="csv")
    assert counts.rows() == [(28, 2)]
    assert counts.schema == pl.Schema({"age": pl.Int64, "count": pl.Int64})
    assert out.result is not None and out.result["file"] == "ages.csv"
    for bad in [{"column": "age", "top_n": 0}, {"column": "age", "output": "../x.csv"}, {}]:
        with pytest.raises(ValidationError):
            validate("excel/value-counts", bad)


def test_examples_validate_and_survive_a_round_trip() -> None:
    names = [
        "excel/inspect",
        "excel/preview",
        "excel/profile-columns",
        "excel/value-counts",
        "excel/group-aggregate",
        "excel/pivot",
        "excel/unpivot",
        "excel/lookup-join",
        "excel/append-files",
        "excel/split-file",
        "excel/convert",
        "excel/validate",
        "excel/sql",
    ]
    for name in names:
        op = REGISTRY.get(name)
        assert op is not None, name
        args = op.args_model.model_validate(op.example)
        # Runs store model_dump(mode="json") and validate it again before executing.
        assert op.args_model.model_validate(args.model_dump(mode="json")) == args, name
        schema = op.json_schema()
        assert schema.get("additionalProperties") is False, name
        for field, spec in schema.get("properties", {}).items():
            assert spec.get("description"), f"{name}.{field} has no description"
