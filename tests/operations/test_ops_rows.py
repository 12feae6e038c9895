"""Row operations: filter, remove duplicates, sort, remove empty, fill empty."""

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
from chatflow.operations.registry import StepOutput
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


# As a real workbook holds them: numbers, booleans, dates, datetimes, codes with leading zeros.
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
        "at": [
            dt.datetime(2024, 3, 1, 10),
            dt.datetime(2024, 3, 1, 8, 30),
            None,
            dt.datetime(2024, 2, 29, 23, 59),
            dt.datetime(2024, 3, 2),
            dt.datetime(2023, 1, 1, 12),
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
    "at": pl.Datetime("us"),
    "code": pl.String,
}


def run(
    tmp_path: Path, operation: str, arguments: dict[str, Any], df: pl.DataFrame = ORDERS
) -> StepOutput:
    return StepHarness(tmp_path, df).run(operation, arguments)


def ids(out: StepOutput) -> list[Any]:
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


def typed_where(tmp_path: Path, *conditions: dict[str, Any]) -> list[int]:
    out = run(tmp_path, "excel/filter-rows", {"conditions": list(conditions)}, TYPED)
    assert out.table is not None
    assert out.table.schema == TYPED_SCHEMA  # filtering never changes a column's type
    return out.table["id"].to_list()


def test_filter_number_columns_compare_numbers(tmp_path: Path) -> None:
    def amount(op: str, value: Any) -> list[int]:
        return typed_where(
            tmp_path / f"{op}{value!r}", {"column": "amount", "op": op, "value": value}
        )

    assert amount("ge", 100) == [1, 4, 6]
    assert amount("eq", 100) == [1, 6]
    assert amount("eq", "100") == [1, 6]  # number text compares as a number on a number column
    assert amount("eq", "100.0") == [1, 6]
    assert amount("ne", 100) == [2, 3, 4, 5]  # the empty cell is not 100
    assert amount("lt", "20") == [2, 5]
    assert amount("gt", -20.5) == [1, 2, 4, 5, 6]
    assert amount("in", [9.5, "1000"]) == [2, 4]
    assert amount("not_in", [9.5, "1000"]) == [1, 3, 5, 6]
    assert amount("eq", "abc") == []
    assert amount("contains", ".") == [2]  # 100.0 reads 100
    assert amount("starts_with", "-") == [5]
    qty = {"column": "qty"}
    assert typed_where(tmp_path / "q1", {**qty, "op": "eq", "value": 0}) == [4]
    assert typed_where(tmp_path / "q2", {**qty, "op": "in", "value": [0, 2.0]}) == [4, 6]
    assert typed_where(tmp_path / "q3", {**qty, "op": "gt", "value": 2.5}) == [1, 3, 5]
    assert typed_where(tmp_path / "q4", {**qty, "op": "is_empty"}) == [2]


def test_filter_booleans_and_dates_compare_as_such(tmp_path: Path) -> None:
    def where_typed(column: str, op: str, value: Any) -> list[int]:
        path = tmp_path / f"{column}{op}{value!r}".replace(":", "")
        return typed_where(path, {"column": column, "op": op, "value": value})

    assert where_typed("paid", "eq", True) == [1, 4, 6]
    assert where_typed("paid", "ne", True) == [2, 3, 5]
    assert where_typed("paid", "eq", "false") == [2, 5]
    assert where_typed("paid", "in", [False]) == [2, 5]
    assert where_typed("day", "ge", "2024-03-01") == [2, 6]
    assert where_typed("day", "eq", "2024-03-01") == [2, 6]
    assert where_typed("day", "lt", "2024-01-01") == [5]
    assert where_typed("day", "gt", "2024-02-29 12:00") == [2, 6]
    assert where_typed("day", "in", ["2024-02-29", "2023-12-31"]) == [1, 5]
    assert where_typed("day", "starts_with", "2024-03") == [2, 6]
    assert where_typed("at", "eq", "2024-03-01") == [1, 2]  # a date compares the date part
    assert where_typed("at", "ge", "2024-03-01 09:00") == [1, 5]
    assert where_typed("at", "lt", "2024-03-01") == [4, 6]
    assert where_typed("at", "eq", "2024-03-02 00:00") == [5]
    assert where_typed("at", "contains", "23:59") == [4]


def test_filter_text_columns_keep_leading_zeros(tmp_path: Path) -> None:
    code = {"column": "code"}
    assert typed_where(tmp_path / "1", {**code, "op": "eq", "value": "007"}) == [1]
    assert typed_where(tmp_path / "2", {**code, "op": "eq", "value": "7"}) == []
    # A JSON number (or a number in gt/ge/lt/le) reads the text cells that are numbers.
    assert typed_where(tmp_path / "3", {**code, "op": "eq", "value": 7}) == [1]
    assert typed_where(tmp_path / "4", {**code, "op": "gt", "value": "5"}) == [1, 2, 3, 6]
    assert typed_where(tmp_path / "5", {**code, "op": "gt", "value": "1"}) == [1, 2, 3, 5, 6]
    assert typed_where(tmp_path / "6", {**code, "op": "lt", "value": "1x"}) == [1, 2, 3, 6]


@pytest.mark.parametrize(
    ("column", "op", "value", "kind"),
    [
        ("amount", "gt", "abc", "float"),
        ("qty", "le", "2024-01-01", "integer"),
        ("qty", "ge", True, "integer"),
        ("day", "gt", 5, "date"),
        ("at", "lt", "yesterday", "datetime"),
        ("paid", "gt", True, "boolean"),
    ],
)
def test_filter_order_needs_a_value_of_the_column_type(
    tmp_path: Path, column: str, op: str, value: Any, kind: str
) -> None:
    with pytest.raises(StepFailed) as caught:
        run(
            tmp_path,
            "excel/filter-rows",
            {"conditions": [{"column": column, "op": op, "value": value}]},
            TYPED,
        )
    assert caught.value.code == "column_type_mismatch"
    assert caught.value.details == {"column": column, "type": kind}
    assert f"Column '{column}' holds {kind} values" in caught.value.message


def test_filter_output_keeps_types_in_the_written_workbook(tmp_path: Path) -> None:
    out = run(
        tmp_path,
        "excel/filter-rows",
        {"conditions": [{"column": "qty", "op": "ge", "value": 3}], "output": "kept.xlsx"},
        TYPED,
    )
    (written,) = out.files
    sheet = openpyxl.load_workbook(written.path).active
    assert sheet is not None
    rows = list(sheet.iter_rows(min_row=2, values_only=True))
    assert rows == [
        (1, 100, 3, True, dt.datetime(2024, 2, 29), dt.datetime(2024, 3, 1, 10), "007"),
        (3, None, 10, None, dt.datetime(2024, 1, 15), None, "12"),
        (5, -20, 7, False, dt.datetime(2023, 12, 31), dt.datetime(2024, 3, 2), "5"),
    ]
    assert [c.data_type for c in sheet[2]] == ["n", "n", "n", "b", "d", "d", "s"]
    assert out.table is not None and out.table.schema == TYPED_SCHEMA
    # Read back, the kept amounts (all whole) make an integer column.
    assert read_table(written.path, kind="xlsx").schema == {**TYPED_SCHEMA, "amount": pl.Int64}


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


def test_remove_duplicates_compares_typed_values(tmp_path: Path) -> None:
    by_amount = run(tmp_path / "1", "excel/remove-duplicates", {"columns": ["amount"]}, TYPED)
    assert ids(by_amount) == [1, 2, 3, 4, 5]  # 100 twice
    by_day = run(
        tmp_path / "2",
        "excel/remove-duplicates",
        {"columns": ["day"], "keep": "none", "case_sensitive": False},
        TYPED,
    )
    assert ids(by_day) == [1, 3, 4, 5]  # 2024-03-01 twice
    by_code = run(tmp_path / "3", "excel/remove-duplicates", {"columns": ["code"]}, TYPED)
    assert ids(by_code) == [1, 2, 3, 4, 5]  # '0100' twice; '007' is not '7'
    for out in (by_amount, by_day, by_code):
        assert out.table is not None and out.table.schema == TYPED_SCHEMA


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


def test_sort_typed_columns_by_their_values(tmp_path: Path) -> None:
    def sort(path: str, *keys: dict[str, Any]) -> StepOutput:
        out = run(tmp_path / path, "excel/sort", {"by": list(keys)}, TYPED)
        assert out.table is not None and out.table.schema == TYPED_SCHEMA
        return out

    amount = sort("1", {"column": "amount", "descending": True})
    assert ids(amount) == [4, 1, 6, 2, 5, 3]
    assert amount.result is not None and amount.result["compared_as"] == {"amount": "number"}
    assert amount.table is not None
    assert amount.table["amount"].to_list() == [1000.0, 100.0, 100.0, 9.5, -20.0, None]
    day = sort("2", {"column": "day"})
    assert ids(day) == [5, 3, 1, 2, 6, 4]
    assert day.result is not None and day.result["compared_as"] == {"day": "date"}
    assert ids(sort("3", {"column": "at", "descending": True})) == [5, 1, 2, 4, 6, 3]
    paid = sort("4", {"column": "paid"}, {"column": "qty", "descending": True})
    assert ids(paid) == [5, 2, 1, 6, 4, 3]  # false first, then true; no value last
    assert paid.result is not None and paid.result["compared_as"] == {
        "paid": "boolean",
        "qty": "number",
    }
    assert ids(sort("5", {"column": "qty", "compare_as": "number"})) == [4, 6, 1, 5, 3, 2]
    as_text = sort("6", {"column": "amount", "compare_as": "text"})
    assert ids(as_text) == [5, 1, 6, 4, 2, 3]  # -20, 100, 100, 1000, 9.5 as they read
    # Text columns: number text sorts as numbers, unless asked to compare text.
    codes = sort("7", {"column": "code"})
    assert ids(codes) == [5, 1, 3, 2, 6, 4]
    assert codes.result is not None and codes.result["compared_as"] == {"code": "number"}
    assert ids(sort("8", {"column": "code", "compare_as": "text"})) == [1, 2, 6, 3, 5, 4]


@pytest.mark.parametrize(
    ("column", "compare_as", "kind"),
    [("day", "number", "date"), ("qty", "date", "integer"), ("paid", "number", "boolean")],
)
def test_sort_refuses_a_comparison_the_type_cannot_make(
    tmp_path: Path, column: str, compare_as: str, kind: str
) -> None:
    with pytest.raises(StepFailed) as caught:
        run(tmp_path, "excel/sort", {"by": [{"column": column, "compare_as": compare_as}]}, TYPED)
    assert caught.value.code == "column_type_mismatch"
    assert caught.value.details == {"column": column, "type": kind}
    assert caught.value.message.startswith(f"Column '{column}' holds {kind} values;")


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
    # The ids are text cells of the input; csv has no kinds, so they read back as numbers.
    back = read_table(written.path, kind="csv")
    assert back["id"].to_list() == [6, 5, 4, 3, 2, 1] and back.schema["id"] == pl.Int64


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


def test_remove_empty_typed_cells_are_empty_only_without_a_value(tmp_path: Path) -> None:
    df = pl.DataFrame(
        {
            "n": [1, None, 0, None],
            "b": [False, None, None, None],
            "d": [None, None, None, dt.date(2024, 1, 2)],
            "t": ["x", "  ", " ", None],
            "none": pl.Series([None] * 4, dtype=pl.Int64),
        }
    )
    out = run(tmp_path, "excel/remove-empty", {"axis": "both"}, df)
    assert out.table is not None
    assert out.table.rows() == [
        (1, False, None, "x"),
        (0, None, None, " "),
        (None, None, dt.date(2024, 1, 2), None),
    ]
    assert out.table.schema == {"n": pl.Int64, "b": pl.Boolean, "d": pl.Date, "t": pl.String}
    assert out.result == {
        "rows_in": 4,
        "rows_out": 3,
        "rows_removed": 1,
        "columns_removed": ["none"],
    }


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


def fill(tmp_path: Path, arguments: dict[str, Any], df: pl.DataFrame = TYPED) -> pl.DataFrame:
    out = run(tmp_path, "excel/fill-empty", arguments, df)
    assert out.table is not None
    return out.table


def test_fill_value_in_the_column_type(tmp_path: Path) -> None:
    zero = fill(tmp_path / "1", {"columns": ["qty", "amount"], "strategy": "value", "value": 0})
    assert zero["qty"].to_list() == [3, 0, 10, 0, 7, 2]
    assert zero["amount"].to_list() == [100.0, 9.5, 0.0, 1000.0, -20.0, 100.0]
    assert zero.schema == TYPED_SCHEMA  # 0 is the number 0: integer stays integer
    text_zero = fill(tmp_path / "2", {"columns": ["qty"], "strategy": "value", "value": "0"})
    assert text_zero["qty"].to_list() == [3, 0, 10, 0, 7, 2] and text_zero.schema["qty"] == pl.Int64
    half = fill(tmp_path / "3", {"columns": ["qty"], "strategy": "value", "value": 2.5})
    assert half["qty"].to_list() == [3.0, 2.5, 10.0, 0.0, 7.0, 2.0]
    assert half.schema["qty"] == pl.Float64
    paid = fill(tmp_path / "4", {"columns": ["paid"], "strategy": "value", "value": False})
    assert paid["paid"].to_list() == [True, False, False, True, False, True]
    assert paid.schema["paid"] == pl.Boolean
    day = fill(
        tmp_path / "5", {"columns": ["day", "at"], "strategy": "value", "value": "2024-01-01"}
    )
    assert day["day"][3] == dt.date(2024, 1, 1) and day["at"][2] == dt.datetime(2024, 1, 1)
    assert day.schema == TYPED_SCHEMA
    code = fill(tmp_path / "6", {"columns": ["code"], "strategy": "value", "value": 0})
    assert code["code"].to_list() == ["007", "0100", "12", "0", "5", "0100"]  # text stays text
    assert code.schema["code"] == pl.String


def test_fill_down_and_up_keep_types(tmp_path: Path) -> None:
    down = fill(tmp_path / "1", {"strategy": "down"})
    assert down.schema == TYPED_SCHEMA
    assert down.row(3) == (
        4,
        1000.0,
        0,
        True,
        dt.date(2024, 1, 15),
        dt.datetime(2024, 2, 29, 23, 59),
        "12",
    )
    up = fill(tmp_path / "2", {"columns": ["amount", "qty"], "strategy": "up"})
    assert up["amount"].to_list() == [100.0, 9.5, 1000.0, 1000.0, -20.0, 100.0]
    assert up["qty"].to_list() == [3, 10, 10, 0, 7, 2]
    assert up.schema == TYPED_SCHEMA


def test_fill_a_column_with_no_values_takes_the_value_type(tmp_path: Path) -> None:
    df = pl.DataFrame({"k": ["a", "b"], "none": pl.Series([None, None], dtype=pl.Int64)})
    out = run(
        tmp_path,
        "excel/fill-empty",
        {"columns": ["none"], "strategy": "value", "value": 0, "output": "filled.xlsx"},
        df,
    )
    assert out.table is not None and out.table.rows() == [("a", 0), ("b", 0)]
    assert out.table.schema == {"k": pl.String, "none": pl.Int64}
    assert out.result is not None and out.result["by_column"] == {"none": 2}
    sheet = openpyxl.load_workbook(out.files[0].path).active
    assert sheet is not None
    cells = [sheet.cell(row, 2) for row in (2, 3)]
    assert [(c.value, c.data_type) for c in cells] == [(0, "n"), (0, "n")]
    assert all(type(c.value) is int for c in cells)


@pytest.mark.parametrize(
    ("column", "value", "kind"),
    [
        ("qty", "n/a", "integer"),
        ("amount", "1,5", "float"),
        ("qty", True, "integer"),
        ("paid", "maybe", "boolean"),
        ("day", "tomorrow", "date"),
        ("day", "2024-01-01 10:00", "date"),
        ("at", 5, "datetime"),
    ],
)
def test_fill_value_of_another_type_is_refused(
    tmp_path: Path, column: str, value: Any, kind: str
) -> None:
    with pytest.raises(StepFailed) as caught:
        fill(tmp_path, {"columns": [column], "strategy": "value", "value": value})
    assert caught.value.code == "column_type_mismatch"
    assert caught.value.details == {"column": column, "type": kind}
    assert caught.value.message.startswith(
        f"Column '{column}' holds {kind} values; the fill value {value!r} is not "
    )


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
