"""Row operations: filter, remove duplicates, sort, remove empty, fill empty."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest
from pydantic import ValidationError

from chatflow.operations import load_all
from chatflow.operations.registry import StepFailed, StepOutput
from chatflow.spreadsheets.reading import read_table
from tests.step_harness import StepHarness

ORDERS = pl.DataFrame(
    {
        "id": ["1", "2", "3", "4", "5", "6"],
        "customer": ["Ann", "bob", "ANN", "Cy", None, "ann "],
        "amount": ["100", "9.5", "x", "1000", "20", " 100.0"],
        "date": [
            "2024-02-29",
            "2024-03-01 10:00:00",
            "2024-01-15",
            None,
            "2023-12-31",
            "2024-03-01",
        ],
    }
)


def run(
    tmp_path: Path, operation: str, arguments: dict[str, Any], df: pl.DataFrame = ORDERS
) -> StepOutput:
    return StepHarness(tmp_path, df).run(operation, arguments)


def ids(out: StepOutput) -> list[str]:
    assert out.table is not None
    return out.table["id"].to_list()


def rejects(operation: str, arguments: Any) -> None:
    op = load_all().get(operation)
    assert op is not None
    with pytest.raises(ValidationError):
        op.args_model.model_validate(arguments)


def fails(tmp_path: Path, operation: str, arguments: dict[str, Any], code: str) -> StepFailed:
    with pytest.raises(StepFailed) as caught:
        run(tmp_path, operation, arguments)
    assert caught.value.code == code, caught.value.message
    return caught.value


def where(tmp_path: Path, *conditions: dict[str, Any], match: str = "all") -> list[str]:
    return ids(run(tmp_path, "excel/filter-rows", {"conditions": list(conditions), "match": match}))


# ---------------------------------------------------------------- filter-rows


def test_filter_keeps_matching_rows_in_order(tmp_path: Path) -> None:
    harness = StepHarness(tmp_path, ORDERS)
    out = harness.run(
        "excel/filter-rows",
        {
            "conditions": [
                {"column": "amount", "op": "ge", "value": 100},
                {"column": "customer", "op": "not_empty"},
            ]
        },
    )
    assert out.table is not None
    assert out.table.rows() == [
        ("1", "Ann", "100", "2024-02-29"),
        ("4", "Cy", "1000", None),
        ("6", "ann ", " 100.0", "2024-03-01"),
    ]
    assert out.result == {"rows_in": 6, "rows_out": 3, "removed": 3}
    assert [p for p, _ in harness.reports] == [0, 25, 50, 75, 100]
    assert harness.reports[2] == (50, "Keeping rows where amount ge 100 and customer not_empty")


def test_filter_numbers_dates_and_text(tmp_path: Path) -> None:
    assert where(tmp_path / "1", {"column": "amount", "op": "lt", "value": "20"}) == ["2"]
    assert where(tmp_path / "2", {"column": "amount", "op": "eq", "value": 100}) == ["1", "6"]
    assert where(tmp_path / "3", {"column": "amount", "op": "eq", "value": "100"}) == ["1"]
    assert where(tmp_path / "4", {"column": "amount", "op": "ne", "value": "100"}) == [
        "2",
        "3",
        "4",
        "5",
        "6",
    ]
    assert where(tmp_path / "5", {"column": "date", "op": "ge", "value": "2024-03-01"}) == [
        "2",
        "6",
    ]
    assert where(tmp_path / "6", {"column": "date", "op": "gt", "value": "2024-03-01 09:30"}) == [
        "2"
    ]
    assert where(tmp_path / "7", {"column": "date", "op": "lt", "value": "2024-01-01"}) == ["5"]
    assert where(tmp_path / "8", {"column": "customer", "op": "gt", "value": "B"}) == [
        "2",
        "4",
        "6",
    ]


def test_filter_text_tests_and_case(tmp_path: Path) -> None:
    insensitive = {"case_sensitive": False}
    assert where(
        tmp_path / "1", {"column": "customer", "op": "eq", "value": "ann", **insensitive}
    ) == ["1", "3"]
    assert where(
        tmp_path / "2", {"column": "customer", "op": "starts_with", "value": "an", **insensitive}
    ) == ["1", "3", "6"]
    assert where(tmp_path / "3", {"column": "customer", "op": "contains", "value": "n"}) == [
        "1",
        "6",
    ]
    assert where(tmp_path / "4", {"column": "customer", "op": "ends_with", "value": "b"}) == ["2"]
    assert where(
        tmp_path / "5", {"column": "customer", "op": "regex", "value": "^a.*n$", **insensitive}
    ) == ["1", "3"]
    assert where(tmp_path / "6", {"column": "customer", "op": "in", "value": ["Ann", "Cy"]}) == [
        "1",
        "4",
    ]
    assert where(
        tmp_path / "7", {"column": "customer", "op": "not_in", "value": ["Ann", "Cy"]}
    ) == ["2", "3", "5", "6"]
    assert where(
        tmp_path / "8",
        {"column": "customer", "op": "is_empty"},
        {"column": "date", "op": "is_empty"},
        match="any",
    ) == ["4", "5"]
    assert where(tmp_path / "9", {"column": "amount", "op": "contains", "value": "."}) == ["2", "6"]


def test_filter_arguments_and_missing_column(tmp_path: Path) -> None:
    def condition(**kw: Any) -> dict[str, Any]:
        return {"conditions": [{"column": "a", **kw}]}

    for bad in [
        {"conditions": []},
        condition(op="eq"),
        condition(op="like", value="x"),
        condition(op="in", value="x"),
        condition(op="in", value=[]),
        condition(op="eq", value=["x"]),
        condition(op="is_empty", value="x"),
        condition(op="regex", value="(unclosed"),
        condition(op="contains", value=""),
        condition(op="contains", value=3),
        {"conditions": [{"column": "a", "op": "eq", "value": "x", "extra": 1}]},
        {"conditions": [{"column": "a", "op": "is_empty"}], "match": "some"},
    ]:
        rejects("excel/filter-rows", bad)
    op = load_all().get("excel/filter-rows")
    assert op is not None
    with pytest.raises(ValidationError) as caught:
        op.args_model.model_validate(condition(op="regex", value="(unclosed"))
    assert caught.value.errors()[0]["type"] == "invalid_regex"
    error = fails(
        tmp_path,
        "excel/filter-rows",
        {"conditions": [{"column": "Amount", "op": "is_empty"}]},
        "column_not_found",
    )
    assert "did you mean 'amount'?" in error.message


def test_filter_output_writes_a_file(tmp_path: Path) -> None:
    out = run(
        tmp_path,
        "excel/filter-rows",
        {"conditions": [{"column": "id", "op": "in", "value": [2, 4]}], "output": "few.xlsx"},
    )
    (written,) = out.files
    assert written.path.exists() and out.wrote_table
    assert read_table(written.path, kind="xlsx")["id"].to_list() == ["2", "4"]


# ---------------------------------------------------------------- remove-duplicates

DUPES = pl.DataFrame(
    {
        "id": ["1", "2", "3", "4", "5", "6"],
        "email": ["a@x", "B@x", "A@X", "c@x", "b@x", None],
        "team": ["red", "red", "red", "blue", "red", None],
    }
)


def test_remove_duplicates_keeps_first_last_or_none(tmp_path: Path) -> None:
    first = run(
        tmp_path / "1",
        "excel/remove-duplicates",
        {"columns": ["email"], "case_sensitive": False},
        DUPES,
    )
    assert first.table is not None
    assert first.table.rows() == [
        ("1", "a@x", "red"),
        ("2", "B@x", "red"),
        ("4", "c@x", "blue"),
        ("6", None, None),
    ]
    assert first.result == {"rows_in": 6, "rows_out": 4, "removed": 2}
    last = run(
        tmp_path / "2",
        "excel/remove-duplicates",
        {"columns": ["email"], "keep": "last", "case_sensitive": False},
        DUPES,
    )
    assert ids(last) == ["3", "4", "5", "6"]
    none = run(
        tmp_path / "3",
        "excel/remove-duplicates",
        {"columns": ["email", "team"], "keep": "none", "case_sensitive": False},
        DUPES,
    )
    assert ids(none) == ["4", "6"]
    exact = run(tmp_path / "4", "excel/remove-duplicates", {"columns": ["team"]}, DUPES)
    assert ids(exact) == ["1", "4", "6"]
    whole = run(
        tmp_path / "5", "excel/remove-duplicates", {}, DUPES.with_columns(pl.lit("0").alias("id"))
    )
    assert whole.result is not None and whole.result["removed"] == 0


def test_remove_duplicates_arguments(tmp_path: Path) -> None:
    for bad in [
        {"columns": []},
        {"columns": ["a", "a"]},
        {"keep": "any"},
        {"case_sensitive": "maybe"},
    ]:
        rejects("excel/remove-duplicates", bad)
    fails(tmp_path, "excel/remove-duplicates", {"columns": ["mail"]}, "column_not_found")


# ---------------------------------------------------------------- sort


def test_sort_auto_detects_numbers_and_is_stable(tmp_path: Path) -> None:
    df = pl.DataFrame(
        {
            "id": ["1", "2", "3", "4", "5"],
            "n": ["10", "9", None, "100", "9.0"],
            "s": ["b", "a", "c", "a", "b"],
        }
    )
    out = run(tmp_path / "1", "excel/sort", {"by": [{"column": "n"}]}, df)
    assert ids(out) == ["2", "5", "1", "4", "3"]
    assert out.result == {"rows_in": 5, "rows_out": 5, "compared_as": {"n": "number"}}
    desc = run(
        tmp_path / "2",
        "excel/sort",
        {"by": [{"column": "s"}, {"column": "n", "descending": True, "nulls_last": False}]},
        df,
    )
    assert ids(desc) == ["4", "2", "1", "5", "3"]
    as_text = run(tmp_path / "3", "excel/sort", {"by": [{"column": "n", "compare_as": "text"}]}, df)
    assert ids(as_text) == ["1", "4", "2", "5", "3"]


def test_sort_dates_natural_and_case(tmp_path: Path) -> None:
    out = run(tmp_path / "1", "excel/sort", {"by": [{"column": "date", "descending": True}]})
    assert ids(out) == ["2", "6", "1", "3", "5", "4"]
    assert out.result is not None and out.result["compared_as"] == {"date": "date"}
    files = pl.DataFrame({"id": ["1", "2", "3", "4"], "f": ["file10", "File2", "file1", "x"]})
    natural = run(
        tmp_path / "2",
        "excel/sort",
        {"by": [{"column": "f", "compare_as": "natural", "case_sensitive": False}]},
        files,
    )
    assert ids(natural) == ["3", "2", "1", "4"]
    plain = run(tmp_path / "3", "excel/sort", {"by": [{"column": "f"}]}, files)
    assert ids(plain) == ["2", "3", "1", "4"]
    as_number = run(
        tmp_path / "4",
        "excel/sort",
        {"by": [{"column": "amount", "compare_as": "number", "descending": True}]},
    )
    assert ids(as_number) == ["4", "1", "6", "5", "2", "3"]


def test_sort_arguments_and_missing_column(tmp_path: Path) -> None:
    for bad in [
        {"by": []},
        {"by": [{"column": "a", "compare_as": "roman"}]},
        {"by": [{"column": "a"}, {"column": "a"}]},
        {"by": ["a"]},
        {"by": [{"column": "a", "asc": True}]},
    ]:
        rejects("excel/sort", bad)
    fails(
        tmp_path, "excel/sort", {"by": [{"column": "id"}, {"column": "price"}]}, "column_not_found"
    )


def test_sort_output_writes_a_file(tmp_path: Path) -> None:
    out = run(
        tmp_path,
        "excel/sort",
        {"by": [{"column": "id", "descending": True}], "output": "sorted.csv"},
    )
    (written,) = out.files
    assert written.path.exists()
    assert read_table(written.path, kind="csv")["id"].to_list() == ["6", "5", "4", "3", "2", "1"]


# ---------------------------------------------------------------- remove-empty

HOLES = pl.DataFrame(
    {
        "a": ["1", "  ", None, "4"],
        "b": [None, " ", None, None],
        "c": ["x", None, "   ", "y"],
    }
)


def test_remove_empty_rows_columns_both(tmp_path: Path) -> None:
    rows = run(tmp_path / "1", "excel/remove-empty", {}, HOLES)
    assert rows.table is not None
    assert rows.table.rows() == [("1", None, "x"), ("4", None, "y")]
    assert rows.result == {"rows_in": 4, "rows_out": 2, "rows_removed": 2, "columns_removed": []}
    columns = run(tmp_path / "2", "excel/remove-empty", {"axis": "columns"}, HOLES)
    assert columns.table is not None
    assert columns.table.rows() == [("1", "x"), ("  ", None), (None, "   "), ("4", "y")]
    both = run(tmp_path / "3", "excel/remove-empty", {"axis": "both"}, HOLES)
    assert both.table is not None
    assert both.table.rows() == [("1", "x"), ("4", "y")]
    assert both.result == {"rows_in": 4, "rows_out": 2, "rows_removed": 2, "columns_removed": ["b"]}
    rejects("excel/remove-empty", {"axis": "cells"})


# ---------------------------------------------------------------- fill-empty

GROUPED = pl.DataFrame(
    {
        "region": ["North", None, "  ", "South", None],
        "rep": [None, "Bo", None, "Cy", None],
        "n": ["1", "2", "3", "4", "5"],
    }
)


def test_fill_down_up_and_value(tmp_path: Path) -> None:
    down = run(
        tmp_path / "1", "excel/fill-empty", {"columns": ["region"], "strategy": "down"}, GROUPED
    )
    assert down.table is not None
    assert down.table["region"].to_list() == ["North", "North", "North", "South", "South"]
    assert down.result == {
        "rows_in": 5,
        "rows_out": 5,
        "cells_filled": 3,
        "by_column": {"region": 3},
    }
    up = run(tmp_path / "2", "excel/fill-empty", {"strategy": "up"}, GROUPED)
    assert up.table is not None
    assert up.table.rows() == [
        ("North", "Bo", "1"),
        ("South", "Bo", "2"),
        ("South", "Cy", "3"),
        ("South", "Cy", "4"),
        (None, None, "5"),
    ]
    value = run(
        tmp_path / "3",
        "excel/fill-empty",
        {"columns": ["rep"], "strategy": "value", "value": "n/a"},
        GROUPED,
    )
    assert value.table is not None
    assert value.table["rep"].to_list() == ["n/a", "Bo", "n/a", "Cy", "n/a"]


def test_fill_empty_arguments_and_missing_column(tmp_path: Path) -> None:
    for bad in [
        {"strategy": "value"},
        {"strategy": "value", "value": " "},
        {"strategy": "down", "value": "x"},
        {"strategy": "sideways"},
        {"columns": [], "strategy": "down"},
        {},
    ]:
        rejects("excel/fill-empty", bad)
    fails(
        tmp_path, "excel/fill-empty", {"columns": ["nope"], "strategy": "down"}, "column_not_found"
    )


def test_fill_empty_output_writes_a_file(tmp_path: Path) -> None:
    out = run(
        tmp_path,
        "excel/fill-empty",
        {"columns": ["region"], "strategy": "down", "output": "filled"},
        GROUPED,
    )
    (written,) = out.files
    assert written.name == "filled.xlsx" and written.path.exists()
    assert read_table(written.path, kind="xlsx")["region"].to_list() == [
        "North",
        "North",
        "North",
        "South",
        "South",
    ]


# ---------------------------------------------------------------- all of them


def test_examples_validate_and_fields_are_described() -> None:
    registry = load_all()
    for name in [
        "excel/filter-rows",
        "excel/remove-duplicates",
        "excel/sort",
        "excel/remove-empty",
        "excel/fill-empty",
    ]:
        op = registry.get(name)
        assert op is not None
        op.args_model.model_validate(op.example)
        schema = op.json_schema()
        assert all("description" in prop for prop in schema["properties"].values()), name
