"""excel/group-aggregate, excel/pivot and excel/unpivot."""

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
from chatflow.operations.reshape import MAX_PIVOT_COLUMNS, group_aggregate, pivot
from chatflow.operations.unpivot import unpivot
from chatflow.spreadsheets.reading import read_table
from tests.step_harness import StepHarness

REGISTRY = load_all()

SALES = pl.DataFrame(
    {
        "region": ["north", "south", "north", None, "south", "north"],
        "month": ["jan", "jan", "feb", "jan", "feb", "jan"],
        # A column of numbers with one "n/a" cell reads as text.
        "amount": ["10", "5.5", "n/a", "7", "2", "3"],
        "units": [1, 2, 3, 4, 5, 6],
        "rep": ["ann", "bob", "ann", "cy", "bob", "dee"],
    }
)


def validate(operation: str, arguments: dict[str, Any]) -> Any:
    op = REGISTRY.get(operation)
    assert op is not None
    return op.args_model.model_validate(arguments)


# --- group-aggregate ----------------------------------------------------------------------


def test_group_aggregate(tmp_path: Path) -> None:
    h = StepHarness(tmp_path, SALES)
    out = h.run(
        "excel/group-aggregate",
        {
            "by": ["region"],
            "aggregations": [
                {"column": "amount", "fn": "sum", "as": "total"},
                {"column": "units", "fn": "sum"},
                {"fn": "count", "as": "rows"},
                {"column": "amount", "fn": "count"},
                {"column": "amount", "fn": "mean"},
                {"column": "units", "fn": "max"},
                {"column": "rep", "fn": "count_distinct"},
                {"column": "rep", "fn": "first"},
                {"column": "rep", "fn": "last"},
                {"column": "rep", "fn": "min"},
            ],
        },
    )
    assert out.table is not None
    assert out.table.columns == [
        "region",
        "total",
        "units_sum",
        "rows",
        "amount_count",
        "amount_mean",
        "units_max",
        "rep_count_distinct",
        "rep_first",
        "rep_last",
        "rep_min",
    ]
    # "n/a" is no number: ignored by sum and mean, but a value for count.
    assert out.table.rows() == [
        ("north", 13.0, 10, 3, 3, 6.5, 6, 2, "ann", "dee", "ann"),
        ("south", 7.5, 7, 2, 2, 3.75, 5, 1, "bob", "bob", "bob"),
        (None, 7.0, 4, 1, 1, 7.0, 4, 1, "cy", "cy", "cy"),
    ]
    assert out.table.dtypes == [
        pl.String,
        pl.Float64,
        pl.Int64,
        pl.Int64,
        pl.Int64,
        pl.Float64,
        pl.Int64,
        pl.Int64,
        pl.String,
        pl.String,
        pl.String,
    ]
    assert out.result == {
        "rows_in": 6,
        "rows_out": 3,
        "groups": 3,
        "columns": out.table.columns,
        "not_numbers": {"amount": 1},
    }
    assert out.message == (
        "Aggregated 6 rows into 3 groups; 1 value of 'amount' is not a number (ignored by sum/mean)"
    )
    assert not out.wrote_table and out.files == []
    assert [p for p, _ in h.reports] == [0, 25, 50, 75, 100]


def test_group_aggregate_whole_table_sorted_and_written(tmp_path: Path) -> None:
    total = StepHarness(tmp_path / "a", SALES).run(
        "excel/group-aggregate",
        {"aggregations": [{"column": "units", "fn": "sum"}, {"fn": "count"}]},
    )
    assert total.table is not None and total.table.rows() == [(21, 6)]
    assert total.table.dtypes == [pl.Int64, pl.Int64]
    out = StepHarness(tmp_path / "b", SALES).run(
        "excel/group-aggregate",
        {
            "by": ["region", "month"],
            "aggregations": [{"column": "units", "fn": "sum", "as": "units"}],
            "sort": True,
            "output": "by_month.csv",
        },
    )
    expected = [
        ("north", "feb", 3),
        ("north", "jan", 7),
        ("south", "feb", 5),
        ("south", "jan", 2),
        (None, "jan", 4),
    ]
    assert out.table is not None and out.table.rows() == expected
    assert out.wrote_table and out.files[0].name == "by_month.csv"
    back = read_table(out.files[0].path, kind="csv")
    assert back.rows() == expected
    assert back.dtypes == [pl.String, pl.String, pl.Int64]


def test_group_aggregate_min_max_compare_numbers_or_text() -> None:
    df = pl.DataFrame(
        {"g": ["a"] * 3, "n": [9, 10, -1], "s": ["9", "10", "-1"], "t": ["9", "10", "x"]}
    )
    args = validate(
        "excel/group-aggregate",
        {
            "by": ["g"],
            "aggregations": [
                {"column": "n", "fn": "max"},
                {"column": "n", "fn": "min"},
                {"column": "s", "fn": "max"},
                {"column": "t", "fn": "max"},
                {"column": "t", "fn": "min"},
                {"column": "t", "fn": "sum"},
            ],
        },
    )
    out = group_aggregate(df, args.by, args.aggregations)
    # Numbers compare as numbers; text as text, even when it is number text.
    assert out.rows() == [("a", 10, -1, "9", "x", "10", 19)]
    assert out.dtypes == [pl.String, pl.Int64, pl.Int64, pl.String, pl.String, pl.String, pl.Int64]


TYPED = pl.DataFrame(
    {
        "region": ["n", "s", "n", None, "s", "n"],
        "year": [2024, 2023, 2024, 2024, 2023, 2023],
        "qty": [1, 2, None, 4, 5, 6],
        "price": [1.5, 2.0, 2.5, None, 0.25, 1.0],
        "paid": [True, False, True, None, True, False],
        "day": [
            dt.date(2024, 3, 1),
            dt.date(2023, 1, 2),
            None,
            dt.date(2024, 1, 1),
            dt.date(2023, 5, 6),
            dt.date(2023, 12, 31),
        ],
        "code": ["007", "12", "0100", None, "5", "007"],
    }
)


def test_group_aggregate_typed_columns(tmp_path: Path) -> None:
    def agg(column: str, fn: str) -> dict[str, str]:
        return {"column": column, "fn": fn, "as": f"{column}_{fn}"}

    out = StepHarness(tmp_path, TYPED).run(
        "excel/group-aggregate",
        {
            "by": ["year"],
            "sort": True,
            "aggregations": [
                agg("qty", "sum"),
                agg("qty", "mean"),
                agg("qty", "count"),
                agg("price", "sum"),
                agg("price", "max"),
                agg("paid", "sum"),
                agg("paid", "mean"),
                agg("day", "min"),
                agg("day", "max"),
                agg("day", "count_distinct"),
                agg("code", "min"),
                agg("code", "first"),
                {"fn": "count"},
            ],
        },
    )
    assert out.table is not None
    assert out.table.rows() == [
        (
            2023,
            13,
            13 / 3,
            3,
            3.25,
            2.0,
            1,
            1 / 3,
            dt.date(2023, 1, 2),
            dt.date(2023, 12, 31),
            3,
            "007",
            "12",
            3,
        ),
        (
            2024,
            5,
            2.5,
            2,
            4.0,
            2.5,
            2,
            1.0,
            dt.date(2024, 1, 1),
            dt.date(2024, 3, 1),
            2,
            "007",
            "007",
            3,
        ),
    ]
    assert out.table.schema == {
        "year": pl.Int64,
        "qty_sum": pl.Int64,
        "qty_mean": pl.Float64,
        "qty_count": pl.Int64,
        "price_sum": pl.Float64,
        "price_max": pl.Float64,
        "paid_sum": pl.Int64,
        "paid_mean": pl.Float64,
        "day_min": pl.Date,
        "day_max": pl.Date,
        "day_count_distinct": pl.Int64,
        "code_min": pl.String,
        "code_first": pl.String,
        "count": pl.Int64,
    }
    assert out.result is not None and "not_numbers" not in out.result


def test_group_aggregate_by_a_boolean_keeps_it_boolean(tmp_path: Path) -> None:
    out = StepHarness(tmp_path, TYPED).run(
        "excel/group-aggregate",
        {
            "by": ["paid"],
            "sort": True,
            "aggregations": [{"column": "price", "fn": "sum"}],
            "output": "by_paid.xlsx",
        },
    )
    assert out.table is not None
    assert out.table.rows() == [(False, 3.0), (True, 4.25), (None, 0.0)]
    assert out.table.schema == {"paid": pl.Boolean, "price_sum": pl.Float64}
    sheet = openpyxl.load_workbook(out.files[0].path).active
    assert sheet is not None
    assert [(c.value, c.data_type) for c in sheet[2]] == [(False, "b"), (3, "n")]
    assert [(c.value, c.data_type) for c in sheet[3]] == [(True, "b"), (4.25, "n")]


@pytest.mark.parametrize("fn", ["sum", "mean"])
def test_group_aggregate_sum_of_dates_is_refused(tmp_path: Path, fn: str) -> None:
    with pytest.raises(StepFailed) as caught:
        StepHarness(tmp_path, TYPED).run(
            "excel/group-aggregate",
            {"by": ["region"], "aggregations": [{"column": "day", "fn": fn}]},
        )
    assert caught.value.code == "column_type_mismatch"
    assert caught.value.details == {"column": "day", "type": "date"}
    assert caught.value.message.startswith("Column 'day' holds date values; sum and mean need")


def test_group_aggregate_arguments(tmp_path: Path) -> None:
    args = validate(
        "excel/group-aggregate",
        {"by": ["region"], "aggregations": [{"column": "amount", "fn": "sum", "as": "total"}]},
    )
    dumped = args.model_dump(mode="json")
    assert dumped["aggregations"] == [{"column": "amount", "fn": "sum", "as": "total"}]
    for bad in [
        {"aggregations": []},
        {"by": ["a"], "aggregations": [{"fn": "sum"}]},
        {"by": ["a"], "aggregations": [{"column": "b", "fn": "median"}]},
        {"by": ["a", "a"], "aggregations": [{"fn": "count"}]},
        {"by": ["a"], "aggregations": [{"column": "a", "fn": "sum", "as": "a"}]},
        {"by": ["a"], "aggregations": [{"column": "b", "fn": "sum", "as_": "x"}]},
        {"by": ["a"], "aggregations": [{"fn": "count"}, {"fn": "count"}]},
        {"by": ["a"], "aggregations": [{"fn": "count"}], "output": "a/b.xlsx"},
        {"by": ["a"], "aggregations": [{"fn": "count"}], "extra": 1},
    ]:
        with pytest.raises(ValidationError):
            validate("excel/group-aggregate", bad)
    with pytest.raises(StepFailed) as caught:
        StepHarness(tmp_path, SALES).run(
            "excel/group-aggregate",
            {"by": ["Region"], "aggregations": [{"column": "amount", "fn": "sum"}]},
        )
    assert caught.value.code == "column_not_found"
    assert "did you mean 'region'?" in caught.value.message


# --- pivot --------------------------------------------------------------------------------


def test_pivot(tmp_path: Path) -> None:
    out = StepHarness(tmp_path, SALES).run(
        "excel/pivot", {"index": ["region"], "columns": "month", "values": "amount"}
    )
    assert out.table is not None
    assert out.table.columns == ["region", "jan", "feb"]
    # amount is text ("n/a" in a column of numbers): sum reads the numbers, counts the rest.
    assert out.table.rows() == [("north", 13.0, 0.0), ("south", 5.5, 2.0), (None, 7.0, None)]
    assert out.table.dtypes == [pl.String, pl.Float64, pl.Float64]
    assert out.result == {
        "rows_in": 6,
        "rows_out": 3,
        "new_columns": 2,
        "not_numbers": {"amount": 1},
    }


def test_pivot_count_blank_values_and_name_clashes() -> None:
    df = pl.DataFrame(
        {"k": ["a", "a", "b"], "col": ["x", None, "k"], "v": ["1", "2", None]},
        schema_overrides={"v": pl.String},
    )
    out = pivot(df, index=["k"], columns="col", values="v", aggregate="count", sort_columns=True)
    assert out.columns == ["k", "k_2", "x", "(blank)"]
    assert out.rows() == [("a", 0, 1, 1), ("b", 0, 0, 0)]
    first = pivot(df, index=["k"], columns="col", values="v", aggregate="first")
    assert first.rows() == [("a", "1", "2", None), ("b", None, None, None)]


def test_pivot_typed_values_and_column_names(tmp_path: Path) -> None:
    def pivot_typed(path: str, **arguments: Any) -> pl.DataFrame:
        out = StepHarness(tmp_path / path, TYPED).run(
            "excel/pivot", {"index": ["region"], **arguments}
        )
        assert out.table is not None
        return out.table

    qty = pivot_typed("1", columns="year", values="qty", sort_columns=True)
    assert qty.columns == ["region", "2023", "2024"]
    assert qty.rows() == [("n", 6, 1), ("s", 7, None), (None, None, 4)]
    assert qty.dtypes == [pl.String, pl.Int64, pl.Int64]
    mean = pivot_typed("2", columns="paid", values="price", aggregate="mean")
    assert mean.columns == ["region", "true", "false", "(blank)"]
    assert mean.rows() == [("n", 2.0, 1.0, None), ("s", 0.25, 2.0, None), (None, None, None, None)]
    assert mean.dtypes == [pl.String, pl.Float64, pl.Float64, pl.Float64]
    latest = pivot_typed("3", columns="year", values="day", aggregate="max")
    assert latest.columns == ["region", "2024", "2023"]
    assert latest.rows() == [
        ("n", dt.date(2024, 3, 1), dt.date(2023, 12, 31)),
        ("s", None, dt.date(2023, 5, 6)),
        (None, dt.date(2024, 1, 1), None),
    ]
    assert latest.dtypes == [pl.String, pl.Date, pl.Date]
    count = pivot_typed("4", columns="day", values="code", aggregate="count")
    assert count.columns == [
        "region",
        "2024-03-01",
        "2023-01-02",
        "(blank)",
        "2024-01-01",
        "2023-05-06",
        "2023-12-31",
    ]
    assert count.row(0) == ("n", 1, 0, 1, 0, 0, 1)
    assert set(count.dtypes[1:]) == {pl.Int64}


def test_pivot_sorts_numeric_column_names_as_numbers() -> None:
    df = pl.DataFrame({"k": ["a"] * 4, "month": [10, 9, 1, 10], "v": [1.5, 2.0, 3.0, 0.5]})
    out = pivot(df, index=["k"], columns="month", values="v", aggregate="sum", sort_columns=True)
    assert out.columns == ["k", "1", "9", "10"]
    assert out.rows() == [("a", 3.0, 2.0, 2.0)]


def test_pivot_sum_of_dates_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StepFailed) as caught:
        StepHarness(tmp_path, TYPED).run(
            "excel/pivot", {"index": ["region"], "columns": "year", "values": "day"}
        )
    assert caught.value.code == "column_type_mismatch"
    assert caught.value.details == {"column": "day", "type": "date"}


def test_pivot_refusals(tmp_path: Path) -> None:
    wide = pl.DataFrame(
        {"k": ["a"] * (MAX_PIVOT_COLUMNS + 1), "c": [str(i) for i in range(MAX_PIVOT_COLUMNS + 1)]}
    ).with_columns(pl.lit("1").alias("v"))
    with pytest.raises(StepFailed) as caught:
        pivot(wide, index=["k"], columns="c", values="v", aggregate="sum")
    assert caught.value.code == "too_many_columns"
    with pytest.raises(StepFailed) as caught:
        StepHarness(tmp_path, SALES).run(
            "excel/pivot", {"index": ["region"], "columns": "Month", "values": "amount"}
        )
    assert caught.value.code == "column_not_found"
    for bad in [
        {"index": [], "columns": "m", "values": "a"},
        {"index": ["r"], "columns": "r", "values": "a"},
        {"index": ["r"], "columns": "m", "values": "m"},
        {"index": ["r"], "columns": "m", "values": "a", "aggregate": "median"},
    ]:
        with pytest.raises(ValidationError):
            validate("excel/pivot", bad)


# --- unpivot ------------------------------------------------------------------------------


def test_unpivot_row_by_row(tmp_path: Path) -> None:
    wide = pl.DataFrame({"id": ["1", "2"], "jan": ["5", None], "feb": ["6", "7"], "x": ["a", "b"]})
    out = StepHarness(tmp_path, wide).run(
        "excel/unpivot",
        {
            "id_columns": ["id"],
            "value_columns": ["jan", "feb"],
            "variable_name": "month",
            "value_name": "amount",
        },
    )
    assert out.table is not None
    assert out.table.columns == ["id", "month", "amount"]
    assert out.table.rows() == [
        ("1", "jan", "5"),
        ("1", "feb", "6"),
        ("2", "jan", None),
        ("2", "feb", "7"),
    ]
    assert out.table.dtypes == [pl.String, pl.String, pl.String]
    assert out.result == {"rows_in": 2, "rows_out": 4, "value_type": "text"}
    rest = unpivot(wide, id_columns=["id", "x"], value_columns=None, drop_empty=True)
    assert rest.rows() == [("1", "a", "jan", "5"), ("1", "a", "feb", "6"), ("2", "b", "feb", "7")]


def test_unpivot_mixed_types_become_text() -> None:
    df = pl.DataFrame({"k": ["a"], "n": [3], "t": ["x"]})
    assert unpivot(df, id_columns=["k"], value_columns=None).rows() == [
        ("a", "n", "3"),
        ("a", "t", "x"),
    ]


def test_unpivot_keeps_a_type_the_value_columns_share(tmp_path: Path) -> None:
    wide = pl.DataFrame(
        {
            "id": [1, 2],
            "jan": [5, None],
            "feb": [6, 7],
            "mar": [0.5, 1.25],
            "note": ["007", "x"],
            "paid": [True, None],
            "day": [dt.date(2024, 1, 2), None],
            "at": [dt.datetime(2024, 1, 2, 3, 4), dt.datetime(2024, 5, 6)],
        }
    )

    def long(path: str, columns: list[str]) -> Any:
        out = StepHarness(tmp_path / path, wide).run(
            "excel/unpivot", {"id_columns": ["id"], "value_columns": columns}
        )
        assert out.table is not None and out.table.schema["id"] == pl.Int64
        return out

    ints = long("1", ["jan", "feb"])
    assert ints.table.rows() == [(1, "jan", 5), (1, "feb", 6), (2, "jan", None), (2, "feb", 7)]
    assert ints.table.schema["value"] == pl.Int64
    assert ints.result == {"rows_in": 2, "rows_out": 4, "value_type": "integer"}
    numbers = long("2", ["feb", "mar"])
    assert numbers.table.rows() == [
        (1, "feb", 6.0),
        (1, "mar", 0.5),
        (2, "feb", 7.0),
        (2, "mar", 1.25),
    ]
    assert numbers.table.schema["value"] == pl.Float64
    assert numbers.result["value_type"] == "float"
    moments = long("3", ["day", "at"])
    assert moments.table.rows() == [
        (1, "day", dt.datetime(2024, 1, 2)),
        (1, "at", dt.datetime(2024, 1, 2, 3, 4)),
        (2, "day", None),
        (2, "at", dt.datetime(2024, 5, 6)),
    ]
    assert moments.table.schema["value"] == pl.Datetime("us")
    mixed = long("4", ["feb", "mar", "note", "paid", "day"])
    assert mixed.table.rows() == [
        (1, "feb", "6"),
        (1, "mar", "0.5"),
        (1, "note", "007"),
        (1, "paid", "true"),
        (1, "day", "2024-01-02"),
        (2, "feb", "7"),
        (2, "mar", "1.25"),
        (2, "note", "x"),
        (2, "paid", None),
        (2, "day", None),
    ]
    assert mixed.table.schema["value"] == pl.String
    assert mixed.result == {
        "rows_in": 2,
        "rows_out": 10,
        "value_type": "text",
        "converted_to_text": ["feb", "mar", "paid", "day"],
    }
    assert mixed.message == (
        "Unpivoted into 10 rows; the value columns mix types, so the values of 'feb' (integer), "
        "'mar' (float), 'paid' (boolean), 'day' (date) became text"
    )


def test_unpivot_refusals(tmp_path: Path) -> None:
    with pytest.raises(StepFailed) as caught:
        unpivot(pl.DataFrame({"k": ["a"]}), id_columns=["k"], value_columns=None)
    assert caught.value.code == "nothing_to_unpivot"
    with pytest.raises(StepFailed) as caught:
        StepHarness(tmp_path, SALES).run("excel/unpivot", {"id_columns": ["nope"]})
    assert caught.value.code == "column_not_found"
    for bad in [
        {},
        {"id_columns": ["a"], "value_columns": ["a"]},
        {"id_columns": ["a"], "variable_name": "x", "value_name": "x"},
        {"id_columns": ["value"]},
        {"id_columns": ["a"], "value_columns": []},
        {"id_columns": ["a"], "variable_name": ""},
    ]:
        with pytest.raises(ValidationError):
            validate("excel/unpivot", bad)
