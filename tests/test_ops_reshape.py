"""excel/group-aggregate, excel/pivot and excel/unpivot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest
from pydantic import ValidationError

from chatflow.operations import load_all
from chatflow.operations.registry import StepFailed
from chatflow.operations.reshape import MAX_PIVOT_COLUMNS, group_aggregate, pivot
from chatflow.operations.unpivot import unpivot
from chatflow.spreadsheets.reading import read_table
from tests.step_harness import StepHarness

REGISTRY = load_all()

SALES = pl.DataFrame(
    {
        "region": ["north", "south", "north", None, "south", "north"],
        "month": ["jan", "jan", "feb", "jan", "feb", "jan"],
        "amount": ["10", "5.5", "n/a", "7", "2", "3"],
        "units": ["1", "2", "3", "4", "5", "6"],
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
    assert out.result == {"rows_in": 6, "rows_out": 3, "groups": 3, "columns": out.table.columns}
    assert not out.wrote_table and out.files == []
    assert [p for p, _ in h.reports] == [0, 25, 50, 75, 100]


def test_group_aggregate_whole_table_sorted_and_written(tmp_path: Path) -> None:
    total = StepHarness(tmp_path / "a", SALES).run(
        "excel/group-aggregate",
        {"aggregations": [{"column": "units", "fn": "sum"}, {"fn": "count"}]},
    )
    assert total.table is not None and total.table.rows() == [(21, 6)]
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
    assert back.rows() == [(r, m, str(u)) for r, m, u in expected]


def test_group_aggregate_min_max_compare_numbers_or_text() -> None:
    df = pl.DataFrame({"g": ["a"] * 3, "n": ["9", "10", "-1"], "t": ["9", "10", "x"]})
    args = validate(
        "excel/group-aggregate",
        {
            "by": ["g"],
            "aggregations": [
                {"column": "n", "fn": "max"},
                {"column": "n", "fn": "min"},
                {"column": "t", "fn": "max"},
                {"column": "t", "fn": "sum"},
            ],
        },
    )
    out = group_aggregate(df, args.by, args.aggregations)
    assert out.rows() == [("a", 10, -1, "x", 19)]


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
    assert out.table.rows() == [("north", 13.0, 0.0), ("south", 5.5, 2.0), (None, 7.0, None)]
    assert out.result == {"rows_in": 6, "rows_out": 3, "new_columns": 2}


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
    assert out.result == {"rows_in": 2, "rows_out": 4}
    rest = unpivot(wide, id_columns=["id", "x"], value_columns=None, drop_empty=True)
    assert rest.rows() == [("1", "a", "jan", "5"), ("1", "a", "feb", "6"), ("2", "b", "feb", "7")]


def test_unpivot_mixed_types_become_text() -> None:
    df = pl.DataFrame({"k": ["a"], "n": [3], "t": ["x"]})
    assert unpivot(df, id_columns=["k"], value_columns=None).rows() == [
        ("a", "n", "3"),
        ("a", "t", "x"),
    ]


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
