"""excel/lookup-join and excel/append-files against real chat files."""

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
from chatflow.operations.append_files import append_tables
from tests.step_harness import StepHarness

REGISTRY = load_all()

ORDERS = pl.DataFrame(
    {
        "order": ["o1", "o2", "o3", "o4", "o5"],
        "sku": ["A1", "B2", "A1", "Z9", None],
        "price": [1, 2, 3, 4, 5],
    }
)
PRICES = pl.DataFrame(
    {
        "code": ["B2", "A1", "B2", "C3", None],
        "price": [20, 10, 21, 30, 99],
        "name": ["bolt", "anchor", "bolt v2", "cog", "nothing"],
    }
)


def validate(operation: str, arguments: dict[str, Any]) -> Any:
    op = REGISTRY.get(operation)
    assert op is not None
    return op.args_model.model_validate(arguments)


def join(tmp_path: Path, arguments: dict[str, Any], left: pl.DataFrame = ORDERS) -> Any:
    h = StepHarness(tmp_path, left, others={"prices.csv": PRICES})
    return h.run("excel/lookup-join", {"right_file": "prices.csv", **arguments})


def test_left_join_repeats_rows_for_duplicate_keys(tmp_path: Path) -> None:
    out = join(tmp_path, {"left_on": "sku", "right_on": "code"})
    assert out.table is not None
    assert out.table.columns == ["order", "sku", "price", "price_right", "name"]
    assert out.table.rows() == [
        ("o1", "A1", 1, 10, "anchor"),
        ("o2", "B2", 2, 20, "bolt"),
        ("o2", "B2", 2, 21, "bolt v2"),
        ("o3", "A1", 3, 10, "anchor"),
        ("o4", "Z9", 4, None, None),
        ("o5", None, 5, None, None),
    ]
    assert out.result == {
        "how": "left",
        "rows_left": 5,
        "rows_right": 5,
        "rows_out": 6,
        "matched_left_rows": 3,
        "unmatched_left_rows": 2,
        "duplicate_right_keys": 1,
        "rows_added_by_duplicates": 1,
        "columns_added": ["price_right", "name"],
        "key_types": [
            {
                "left": "sku",
                "left_type": "text",
                "right": "code",
                "right_type": "text",
                "matched_as": "text",
            }
        ],
    }
    assert out.table.schema == {
        "order": pl.String,
        "sku": pl.String,
        "price": pl.Int64,
        "price_right": pl.Int64,
        "name": pl.String,
    }
    assert out.message == "Matched 3 of 5 rows in prices.csv"


def test_first_match_like_vlookup_and_refusing_duplicates(tmp_path: Path) -> None:
    out = join(
        tmp_path / "a",
        {
            "left_on": ["sku"],
            "right_on": ["code"],
            "take_columns": ["name"],
            "right_duplicates": "first",
        },
    )
    assert out.table is not None
    assert out.table.rows() == [
        ("o1", "A1", 1, "anchor"),
        ("o2", "B2", 2, "bolt"),
        ("o3", "A1", 3, "anchor"),
        ("o4", "Z9", 4, None),
        ("o5", None, 5, None),
    ]
    assert out.result["rows_added_by_duplicates"] == 0
    with pytest.raises(StepFailed) as caught:
        join(tmp_path / "b", {"left_on": "sku", "right_on": "code", "right_duplicates": "error"})
    assert caught.value.code == "duplicate_keys"
    assert caught.value.details == {"duplicate_keys": 1, "examples": ["B2"]}


def test_inner_outer_semi_anti(tmp_path: Path) -> None:
    base = {"left_on": "sku", "right_on": "code", "right_duplicates": "first"}
    inner = join(tmp_path / "i", {**base, "how": "inner", "take_columns": ["name"]})
    assert inner.table.rows() == [
        ("o1", "A1", 1, "anchor"),
        ("o2", "B2", 2, "bolt"),
        ("o3", "A1", 3, "anchor"),
    ]
    outer = join(tmp_path / "o", {**base, "how": "outer", "take_columns": ["name"]})
    assert outer.table.rows() == [
        ("o1", "A1", 1, "anchor"),
        ("o2", "B2", 2, "bolt"),
        ("o3", "A1", 3, "anchor"),
        ("o4", "Z9", 4, None),
        ("o5", None, 5, None),
        (None, "C3", None, "cog"),
        (None, None, None, "nothing"),
    ]
    assert outer.result["right_only_rows"] == 2
    semi = join(tmp_path / "s", {**base, "how": "semi"})
    assert semi.table.rows() == ORDERS.head(3).rows()
    anti = join(tmp_path / "a", {**base, "how": "anti"})
    assert anti.table.rows() == ORDERS.tail(2).rows()


def test_keys_compare_as_text_optionally_normalised(tmp_path: Path) -> None:
    left = pl.DataFrame({"id": [" a1", "B2", "7"], "qty": ["1", "2", "3"]})
    right = pl.DataFrame({"ID": ["A1", "b2", "7"], "label": ["x", "y", "z"]})
    h = StepHarness(tmp_path, left, others={"labels.xlsx": right})
    exact = h.run(
        "excel/lookup-join", {"right_file": "labels.xlsx", "left_on": "id", "right_on": "ID"}
    )
    assert exact.table.rows() == [(" a1", "1", None), ("B2", "2", None), ("7", "3", "z")]
    h.files.current = None
    loose = h.run(
        "excel/lookup-join",
        {"right_file": "labels.xlsx", "left_on": "id", "right_on": "ID", "normalize_keys": True},
    )
    assert loose.table.rows() == [(" a1", "1", "x"), ("B2", "2", "y"), ("7", "3", "z")]


def test_join_failures(tmp_path: Path) -> None:
    with pytest.raises(StepFailed) as caught:
        join(tmp_path / "a", {"left_on": "sku", "right_on": "code", "right_file": "nope.csv"})
    assert caught.value.code == "file_not_found"
    with pytest.raises(StepFailed) as caught:
        join(tmp_path / "b", {"left_on": "sku"})  # prices.csv has no "sku"
    assert caught.value.code == "column_not_found"
    with pytest.raises(StepFailed) as caught:
        join(tmp_path / "c", {"left_on": "SKU", "right_on": "code"})
    assert caught.value.code == "column_not_found"
    with pytest.raises(StepFailed) as caught:
        join(tmp_path / "d", {"left_on": "sku", "right_on": "code", "take_columns": ["cost"]})
    assert caught.value.code == "column_not_found"
    for bad in [
        {"right_file": "p.csv"},
        {"right_file": "p.csv", "left_on": ["a", "b"], "right_on": "c"},
        {"right_file": "p.csv", "left_on": []},
        {"right_file": "p.csv", "left_on": "a", "how": "cross"},
        {"right_file": "p.csv", "left_on": "a", "how": "anti", "take_columns": ["x"]},
        {"right_file": "p.csv", "left_on": "a", "right_duplicates": "last"},
    ]:
        with pytest.raises(ValidationError):
            validate("excel/lookup-join", bad)
    op = REGISTRY.get("excel/lookup-join")
    assert op is not None and op.input_columns is not None
    assert op.input_columns(validate("excel/lookup-join", {"right_file": "p", "left_on": "a"})) == [
        "a"
    ]


# --- append-files -------------------------------------------------------------------------

JAN = pl.DataFrame({"id": [1, 2], "amount": [10, 20]})
FEB = pl.DataFrame({"amount": [30], "id": [3], "note": ["late"]})
MAR = pl.DataFrame({"a": [4], "b": [40]})


def test_append_by_name_with_source(tmp_path: Path) -> None:
    h = StepHarness(tmp_path, JAN, input_name="jan.xlsx", others={"feb.csv": FEB, "mar.xlsx": MAR})
    out = h.run(
        "excel/append-files",
        {
            "files": ["feb.csv", {"file": "mar.xlsx", "sheet": "Sheet1"}],
            "add_source_column": "source",
        },
    )
    assert out.table is not None
    assert out.table.columns == ["id", "amount", "note", "a", "b", "source"]
    assert out.table.rows() == [
        (1, 10, None, None, None, "jan.xlsx"),
        (2, 20, None, None, None, "jan.xlsx"),
        (3, 30, "late", None, None, "feb.csv"),
        (None, None, None, 4, 40, "mar.xlsx [Sheet1]"),
    ]
    assert out.table.dtypes == [pl.Int64, pl.Int64, pl.String, pl.Int64, pl.Int64, pl.String]
    assert out.result == {
        "sources": [
            {"source": "jan.xlsx", "rows": 2},
            {"source": "feb.csv", "rows": 1},
            {"source": "mar.xlsx [Sheet1]", "rows": 1},
        ],
        "rows_out": 4,
        "columns_out": 6,
        "columns_not_in_all": ["id", "amount", "note", "a", "b"],
        "columns_as_text": [],
    }
    assert out.message == "Appended 3 tables into 4 rows"


def test_append_by_position(tmp_path: Path) -> None:
    h = StepHarness(tmp_path, JAN, others={"mar.xlsx": MAR, "feb.csv": FEB})
    out = h.run("excel/append-files", {"files": ["mar.xlsx"], "align": "by_position"})
    assert out.table is not None
    assert out.table.rows() == [(1, 10), (2, 20), (4, 40)]
    assert out.table.dtypes == [pl.Int64, pl.Int64]
    with pytest.raises(StepFailed) as caught:
        h.files.current = None
        h.run("excel/append-files", {"files": ["feb.csv"], "align": "by_position"})
    assert caught.value.code == "incompatible_files"


def test_append_types_and_failures(tmp_path: Path) -> None:
    typed = pl.DataFrame({"id": [5], "amount": ["x"]})
    out, missing, as_text = append_tables([("a", JAN), ("b", typed)], align="by_name")
    assert out.schema == {"id": pl.Int64, "amount": pl.String}
    assert out.rows() == [(1, "10"), (2, "20"), (5, "x")]
    assert missing == [] and as_text == ["amount"]
    with pytest.raises(StepFailed) as caught:
        append_tables([("a", JAN)], align="by_name", source_column="id")
    assert caught.value.code == "column_exists"
    with pytest.raises(StepFailed) as caught:
        StepHarness(tmp_path, JAN).run("excel/append-files", {"files": ["feb.csv"]})
    assert caught.value.code == "file_not_found"
    for bad in [
        {"files": []},
        {"files": ["a.csv"], "align": "by_header"},
        {"files": [{"file": "a.csv", "tab": "x"}]},
        {"files": ["a.csv"], "add_source_column": ""},
        {"files": ["a.csv"] * 51},
    ]:
        with pytest.raises(ValidationError):
            validate("excel/append-files", bad)


# --- types --------------------------------------------------------------------------------


def test_number_key_against_text_key_matches_by_text_form(tmp_path: Path) -> None:
    left = pl.DataFrame({"code": [120.0, 3.5, 7.0, None], "qty": [1, 2, 3, 4]})
    right = pl.DataFrame({"code": ["120", "3.5", "7.0", "0120"], "label": ["a", "b", "c", "d"]})
    h = StepHarness(tmp_path, left, others={"labels.xlsx": right})
    out = h.run("excel/lookup-join", {"right_file": "labels.xlsx", "left_on": "code"})
    assert out.table is not None
    assert out.table.schema == {"code": pl.Float64, "qty": pl.Int64, "label": pl.String}
    assert out.table.rows() == [(120.0, 1, "a"), (3.5, 2, "b"), (7.0, 3, None), (None, 4, None)]
    assert out.result["key_types"] == [
        {
            "left": "code",
            "left_type": "float",
            "right": "code",
            "right_type": "text",
            "matched_as": "text",
        }
    ]
    assert out.message == (
        "Matched 2 of 4 rows in labels.xlsx; keys 'code' (float) and 'code' (text) were "
        "compared as text"
    )


def test_integer_and_decimal_keys_match_as_numbers(tmp_path: Path) -> None:
    left = pl.DataFrame({"id": [1, 2, 3]})
    right = pl.DataFrame({"id": [1.0, 2.5, 3.0], "price": [9.5, 8.0, 7.25]})
    h = StepHarness(tmp_path, left, others={"prices.xlsx": right})
    out = h.run("excel/lookup-join", {"right_file": "prices.xlsx", "left_on": "id"})
    assert out.table is not None
    assert out.table.schema == {"id": pl.Int64, "price": pl.Float64}
    assert out.table.rows() == [(1, 9.5), (2, None), (3, 7.25)]
    assert out.result["key_types"][0]["matched_as"] == "number"
    assert out.message == "Matched 2 of 3 rows in prices.xlsx"
    h.files.current = None
    outer = h.run(
        "excel/lookup-join", {"right_file": "prices.xlsx", "left_on": "id", "how": "outer"}
    )
    assert outer.table is not None
    assert outer.table.schema == {"id": pl.Float64, "price": pl.Float64}
    assert outer.table.rows() == [(1.0, 9.5), (2.0, None), (3.0, 7.25), (2.5, 8.0)]


def test_outer_join_of_number_and_text_keys_gives_a_text_key_column(tmp_path: Path) -> None:
    left = pl.DataFrame({"id": [120, 5], "qty": [1, 2]})
    right = pl.DataFrame({"id": ["120", "0120"], "label": ["a", "b"]})
    h = StepHarness(tmp_path, left, others={"labels.xlsx": right})
    out = h.run("excel/lookup-join", {"right_file": "labels.xlsx", "left_on": "id", "how": "outer"})
    assert out.table is not None
    assert out.table.schema == {"id": pl.String, "qty": pl.Int64, "label": pl.String}
    assert out.table.rows() == [("120", 1, "a"), ("5", 2, None), ("0120", None, "b")]


def test_date_boolean_and_text_keys_match_natively(tmp_path: Path) -> None:
    day = dt.date(2024, 1, 31)
    left = pl.DataFrame(
        {
            "day": [day, dt.date(2024, 2, 1)],
            "flag": [True, False],
            "zip": ["01234", "1234"],
        }
    )
    right = pl.DataFrame(
        {
            "day": [dt.datetime(2024, 1, 31), dt.datetime(2024, 2, 1, 9, 30)],
            "flag": [True, False],
            "zip": ["01234", "01234"],
            "n": [1, 2],
        }
    )
    h = StepHarness(tmp_path, left, others={"r.xlsx": right})
    by_day = h.run(
        "excel/lookup-join",
        {"right_file": "r.xlsx", "left_on": "day", "take_columns": ["n"]},
    )
    assert by_day.table is not None
    assert by_day.table.schema == {
        "day": pl.Date,
        "flag": pl.Boolean,
        "zip": pl.String,
        "n": pl.Int64,
    }
    assert by_day.table.rows() == [
        (day, True, "01234", 1),
        (dt.date(2024, 2, 1), False, "1234", None),
    ]
    assert by_day.result["key_types"][0]["matched_as"] == "datetime"
    h.files.current = None
    by_flag_and_zip = h.run(
        "excel/lookup-join",
        {"right_file": "r.xlsx", "left_on": ["flag", "zip"], "take_columns": ["n"]},
    )
    assert by_flag_and_zip.table is not None
    assert by_flag_and_zip.table["n"].to_list() == [1, None]  # "1234" is not "01234"
    assert [k["matched_as"] for k in by_flag_and_zip.result["key_types"]] == ["boolean", "text"]


def test_append_keeps_types_and_turns_mixed_columns_into_text(tmp_path: Path) -> None:
    first = pl.DataFrame(
        {
            "id": [1, 2],
            "amount": [10, 20],
            "day": [dt.date(2024, 1, 31), None],
            "code": [120, 7],
            "paid": [True, False],
        }
    )
    second = pl.DataFrame(
        {
            "id": [3],
            "amount": [2.5],
            "day": [dt.datetime(2024, 2, 1, 9, 30)],
            "code": ["0120"],
            "paid": ["yes"],
        }
    )
    h = StepHarness(tmp_path, first, others={"more.xlsx": second})
    out = h.run("excel/append-files", {"files": ["more.xlsx"], "output": "all.xlsx"})
    assert out.table is not None
    assert out.table.schema == {
        "id": pl.Int64,
        "amount": pl.Float64,
        "day": pl.Datetime("us"),
        "code": pl.String,
        "paid": pl.String,
    }
    assert out.table.rows() == [
        (1, 10.0, dt.datetime(2024, 1, 31), "120", "true"),
        (2, 20.0, None, "7", "false"),
        (3, 2.5, dt.datetime(2024, 2, 1, 9, 30), "0120", "yes"),
    ]
    assert out.result["columns_as_text"] == ["code", "paid"]
    assert out.message == (
        "Appended 2 tables into 3 rows; columns 'code', 'paid' had different types in "
        "different files and became text"
    )
    sheet = openpyxl.load_workbook(out.files[0].path).active
    assert sheet is not None
    assert [(c.value, c.data_type) for c in sheet[2]] == [
        (1, "n"),
        (10, "n"),
        (dt.datetime(2024, 1, 31), "d"),
        ("120", "s"),
        ("true", "s"),
    ]


def test_append_ignores_the_type_of_a_column_without_values(tmp_path: Path) -> None:
    first = pl.DataFrame({"id": [1], "amount": [10]})
    empty = pl.DataFrame(
        {"id": [2], "amount": [None]}, schema={"id": pl.Int64, "amount": pl.String}
    )
    out, missing, as_text = append_tables([("a", first), ("b", empty)], align="by_name")
    assert out.schema == {"id": pl.Int64, "amount": pl.Int64}
    assert out.rows() == [(1, 10), (2, None)]
    assert missing == [] and as_text == []
    decimals = pl.DataFrame({"v": [0.1, 1e20]})
    text = pl.DataFrame({"v": ["x"]})
    out, _, as_text = append_tables([("a", decimals), ("b", text)], align="by_position")
    assert out.rows() == [("0.1",), ("1e+20",), ("x",)] and as_text == ["v"]
