"""excel/lookup-join and excel/append-files against real chat files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest
from pydantic import ValidationError

from chatflow.operations import load_all
from chatflow.operations.combine import append_tables
from chatflow.operations.registry import StepFailed
from tests.step_harness import StepHarness

REGISTRY = load_all()

ORDERS = pl.DataFrame(
    {
        "order": ["o1", "o2", "o3", "o4", "o5"],
        "sku": ["A1", "B2", "A1", "Z9", None],
        "price": ["1", "2", "3", "4", "5"],
    }
)
PRICES = pl.DataFrame(
    {
        "code": ["B2", "A1", "B2", "C3", None],
        "price": ["20", "10", "21", "30", "99"],
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
        ("o1", "A1", "1", "10", "anchor"),
        ("o2", "B2", "2", "20", "bolt"),
        ("o2", "B2", "2", "21", "bolt v2"),
        ("o3", "A1", "3", "10", "anchor"),
        ("o4", "Z9", "4", None, None),
        ("o5", None, "5", None, None),
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
    }


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
        ("o1", "A1", "1", "anchor"),
        ("o2", "B2", "2", "bolt"),
        ("o3", "A1", "3", "anchor"),
        ("o4", "Z9", "4", None),
        ("o5", None, "5", None),
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
        ("o1", "A1", "1", "anchor"),
        ("o2", "B2", "2", "bolt"),
        ("o3", "A1", "3", "anchor"),
    ]
    outer = join(tmp_path / "o", {**base, "how": "outer", "take_columns": ["name"]})
    assert outer.table.rows() == [
        ("o1", "A1", "1", "anchor"),
        ("o2", "B2", "2", "bolt"),
        ("o3", "A1", "3", "anchor"),
        ("o4", "Z9", "4", None),
        ("o5", None, "5", None),
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

JAN = pl.DataFrame({"id": ["1", "2"], "amount": ["10", "20"]})
FEB = pl.DataFrame({"amount": ["30"], "id": ["3"], "note": ["late"]})
MAR = pl.DataFrame({"a": ["4"], "b": ["40"]})


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
        ("1", "10", None, None, None, "jan.xlsx"),
        ("2", "20", None, None, None, "jan.xlsx"),
        ("3", "30", "late", None, None, "feb.csv"),
        (None, None, None, "4", "40", "mar.xlsx [Sheet1]"),
    ]
    assert out.result == {
        "sources": [
            {"source": "jan.xlsx", "rows": 2},
            {"source": "feb.csv", "rows": 1},
            {"source": "mar.xlsx [Sheet1]", "rows": 1},
        ],
        "rows_out": 4,
        "columns_out": 6,
        "columns_not_in_all": ["id", "amount", "note", "a", "b"],
    }


def test_append_by_position(tmp_path: Path) -> None:
    h = StepHarness(tmp_path, JAN, others={"mar.xlsx": MAR, "feb.csv": FEB})
    out = h.run("excel/append-files", {"files": ["mar.xlsx"], "align": "by_position"})
    assert out.table is not None
    assert out.table.rows() == [("1", "10"), ("2", "20"), ("4", "40")]
    with pytest.raises(StepFailed) as caught:
        h.files.current = None
        h.run("excel/append-files", {"files": ["feb.csv"], "align": "by_position"})
    assert caught.value.code == "incompatible_files"


def test_append_types_and_failures(tmp_path: Path) -> None:
    typed = pl.DataFrame({"id": [5], "amount": ["x"]})
    out, missing = append_tables([("a", JAN), ("b", typed)], align="by_name")
    assert out.schema["id"] == pl.String and out["id"].to_list() == ["1", "2", "5"]
    assert missing == []
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
