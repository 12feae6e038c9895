"""excel/inspect, excel/preview, excel/profile-columns, excel/value-counts and type inference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest
from pydantic import ValidationError

from chatflow.operations import load_all
from chatflow.operations.column_types import SAMPLE_ROWS, infer_types
from chatflow.operations.inspect_ops import value_counts
from chatflow.operations.registry import StepFailed
from chatflow.spreadsheets.reading import read_table
from tests.fixtures_util import make_xlsx
from tests.step_harness import StepHarness

REGISTRY = load_all()

PEOPLE = pl.DataFrame(
    {
        "name": ["ann", "bob", "cy", "dee", "eve"],
        "age": ["34", "28", None, "41", "28"],
        "postal_code": ["01234", "98765", "01234", None, "01234"],
        "joined": ["2024-01-05 00:00:00", "2023-12-31", None, None, "2024-02-29"],
        "score": ["1.5", "2", "-0.25", "1e2", " 3 "],
    }
)


def validate(operation: str, arguments: dict[str, Any]) -> Any:
    op = REGISTRY.get(operation)
    assert op is not None
    return op.args_model.model_validate(arguments)


def test_infer_types_judges_every_value() -> None:
    df = pl.DataFrame(
        {
            "int": ["1", "-2", " 3", None, "+4"],
            "float": ["1.5", "2", "1e3", ".5", None],
            "zip": ["01234", "12345", "99999", "00501", "10000"],
            "bool": ["true", "FALSE", "True", None, None],
            "date": ["2024-01-05 00:00:00", "2024-02-29", None, None, "1999-12-31"],
            "datetime": ["2024-01-05 10:30:00", "2024-01-06", "2024-01-06T07:08", None, None],
            "text": ["a", "1", None, None, None],
            "money": ["1,234", "5", None, None, None],
            "bad_date": ["2024-13-01", None, None, None, None],
            "nan": ["NaN", "inf", None, None, None],
            "empty": pl.Series([None] * 5, dtype=pl.String),
            "typed": [1, 2, 3, 4, 5],
        }
    )
    assert infer_types(df) == {
        "int": "integer",
        "float": "float",
        "zip": "text",
        "bool": "boolean",
        "date": "date",
        "datetime": "datetime",
        "text": "text",
        "money": "text",
        "bad_date": "text",
        "nan": "text",
        "empty": "empty",
        "typed": "integer",
    }


def test_infer_types_confirms_the_sample_on_every_row() -> None:
    n = SAMPLE_ROWS + 5
    late_text = [str(i) for i in range(n - 1)] + ["x"]
    late_value = [None] * (n - 1) + ["5"]
    df = pl.DataFrame(
        {"late_text": late_text, "late_value": late_value},
        schema_overrides={"late_value": pl.String},
    )
    assert infer_types(df) == {"late_text": "text", "late_value": "integer"}


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
            {"name": "name", "inferred_type": "text", "nulls": 0},
            {"name": "age", "inferred_type": "integer", "nulls": 1},
            {"name": "postal_code", "inferred_type": "text", "nulls": 1},
            {"name": "joined", "inferred_type": "date", "nulls": 2},
            {"name": "score", "inferred_type": "float", "nulls": 0},
        ],
        "columns_truncated": False,
    }
    assert out.passthrough and not out.wrote_table and out.files == []
    assert out.table is not None and out.table.rows() == PEOPLE.rows()
    assert [p for p, _ in h.reports] == [0, 25, 50, 75, 100]
    assert h.reports[-1] == (100, "5 rows, 5 columns")


def test_inspect_a_csv_input_has_no_sheets(tmp_path: Path) -> None:
    out = StepHarness(tmp_path, PEOPLE, input_name="people.csv").run("excel/inspect", {})
    assert out.result is not None
    assert (out.result["input"], out.result["sheets"], out.result["row_count"]) == (
        "people.csv",
        [],
        5,
    )


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
        {"name": "n", "inferred_type": "integer", "nulls": 0},
        {"name": "m", "inferred_type": "float", "nulls": 0},
    ]
    assert out.table is not None and out.table.rows() == PEOPLE.head(2).rows()


def test_preview(tmp_path: Path) -> None:
    df = PEOPLE.with_columns(pl.Series("note", ["x" * 1500, None, "z", "", "q"]))
    out = StepHarness(tmp_path, df.head(3)).run("excel/preview", {"rows": 2})
    assert out.result == {
        "columns": ["name", "age", "postal_code", "joined", "score", "note"],
        "rows": [
            ["ann", "34", "01234", "2024-01-05 00:00:00", "1.5", "x" * 999 + "…"],
            ["bob", "28", "98765", "2023-12-31", "2", None],
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
        "excel/profile-columns", {"columns": ["age", "postal_code", "score"]}
    )
    assert out.result == {
        "row_count": 5,
        "columns": [
            {
                "name": "age",
                "inferred_type": "integer",
                "nulls": 1,
                "distinct": 3,
                "min": 28,
                "max": 41,
                "mean": 32.75,
                "top_values": [
                    {"value": "28", "count": 2},
                    {"value": "34", "count": 1},
                    {"value": "41", "count": 1},
                ],
            },
            {
                "name": "postal_code",
                "inferred_type": "text",
                "nulls": 1,
                "distinct": 2,
                "min": "01234",
                "max": "98765",
                "mean": None,
                "top_values": [{"value": "01234", "count": 3}, {"value": "98765", "count": 1}],
            },
            {
                "name": "score",
                "inferred_type": "float",
                "nulls": 0,
                "distinct": 5,
                "min": -0.25,
                "max": 100.0,
                "mean": 21.25,
                "top_values": [
                    {"value": " 3 ", "count": 1},
                    {"value": "-0.25", "count": 1},
                    {"value": "1.5", "count": 1},
                    {"value": "1e2", "count": 1},
                    {"value": "2", "count": 1},
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
    assert read_table(written.path, kind="csv").rows() == [("28", "2")]
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
