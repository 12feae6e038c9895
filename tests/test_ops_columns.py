"""Column operations: select, rename, reorder, add, split and merge columns."""

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

PEOPLE = pl.DataFrame(
    {
        "id": ["1", "2", "3", "4"],
        "first": ["Ann", "Bob", None, "Cy"],
        "last": ["Lee", None, "Diaz", "de la Cruz"],
        "city": ["Oslo", "Rome", "Lima", None],
    }
)


def run(
    tmp_path: Path, operation: str, arguments: dict[str, Any], df: pl.DataFrame = PEOPLE
) -> StepOutput:
    return StepHarness(tmp_path, df).run(operation, arguments)


def table(out: StepOutput) -> pl.DataFrame:
    assert out.table is not None
    return out.table


def rejects(operation: str, arguments: Any) -> None:
    op = load_all().get(operation)
    assert op is not None
    with pytest.raises(ValidationError):
        op.args_model.model_validate(arguments)


def fails(
    tmp_path: Path, operation: str, arguments: dict[str, Any], code: str, df: pl.DataFrame = PEOPLE
) -> StepFailed:
    with pytest.raises(StepFailed) as caught:
        run(tmp_path, operation, arguments, df)
    assert caught.value.code == code, caught.value.message
    return caught.value


# ---------------------------------------------------------------- select-columns


def test_select_keeps_columns_in_the_given_order(tmp_path: Path) -> None:
    harness = StepHarness(tmp_path, PEOPLE)
    out = harness.run("excel/select-columns", {"columns": ["city", "id"]})
    assert table(out).columns == ["city", "id"]
    assert table(out).rows() == [("Oslo", "1"), ("Rome", "2"), ("Lima", "3"), (None, "4")]
    assert out.result == {"rows_in": 4, "rows_out": 4, "columns_in": 4, "columns_out": 2}
    assert out.files == [] and not out.wrote_table
    assert harness.reports == [
        (0, "Starting: select columns"),
        (25, "Read 4 rows"),
        (50, "Keeping columns 'city', 'id'"),
        (75, "Handing on 4 rows"),
        (100, "Kept 2 columns of 4"),
    ]


def test_select_drop_keeps_the_rest_in_order(tmp_path: Path) -> None:
    out = run(tmp_path, "excel/select-columns", {"columns": ["first", "city"], "mode": "drop"})
    assert table(out).columns == ["id", "last"]
    assert table(out).rows() == [("1", "Lee"), ("2", None), ("3", "Diaz"), ("4", "de la Cruz")]
    fails(
        tmp_path / "b",
        "excel/select-columns",
        {"columns": list(PEOPLE.columns), "mode": "drop"},
        "no_columns_left",
    )


def test_select_arguments_and_missing_column(tmp_path: Path) -> None:
    for bad in [
        {},
        {"columns": []},
        {"columns": ["a", "a"]},
        {"columns": ["a"], "mode": "x"},
        {"columns": ["a"], "nope": 1},
    ]:
        rejects("excel/select-columns", bad)
    error = fails(tmp_path, "excel/select-columns", {"columns": ["id", "zip"]}, "column_not_found")
    assert error.details["missing"] == ["zip"]
    op = load_all().get("excel/select-columns")
    assert op is not None and op.input_columns is not None
    assert op.input_columns(op.args_model.model_validate({"columns": ["b", "a"]})) == ["b", "a"]


def test_select_output_writes_a_file(tmp_path: Path) -> None:
    out = run(tmp_path, "excel/select-columns", {"columns": ["id", "city"], "output": "ids.csv"})
    (written,) = out.files
    assert out.wrote_table and written.name == "ids.csv" and written.path.exists()
    assert read_table(written.path, kind="csv").rows() == table(out).rows()


# ---------------------------------------------------------------- rename-columns


def test_rename_keeps_positions_and_can_swap(tmp_path: Path) -> None:
    out = run(
        tmp_path,
        "excel/rename-columns",
        {"mapping": {"first": "last", "last": "first", "id": "ID"}},
    )
    assert table(out).columns == ["ID", "last", "first", "city"]
    assert table(out).rows()[0] == ("1", "Ann", "Lee", "Oslo")
    assert out.result == {"rows_in": 4, "rows_out": 4, "renamed": 3}


def test_rename_refuses_a_taken_name(tmp_path: Path) -> None:
    error = fails(tmp_path, "excel/rename-columns", {"mapping": {"first": "city"}}, "column_exists")
    assert error.details == {"existing": ["city"]}
    fails(tmp_path / "b", "excel/rename-columns", {"mapping": {"zip": "z"}}, "column_not_found")
    for bad in [
        {"mapping": {}},
        {"mapping": {"a": ""}},
        {"mapping": {"a": " x"}},
        {"mapping": {"a": "x", "b": "x"}},
        {"mapping": ["a"]},
    ]:
        rejects("excel/rename-columns", bad)


# ---------------------------------------------------------------- reorder-columns


def test_reorder_puts_listed_columns_first(tmp_path: Path) -> None:
    out = run(tmp_path, "excel/reorder-columns", {"order": ["city", "first"]})
    assert table(out).columns == ["city", "first", "id", "last"]
    assert table(out).rows()[1] == ("Rome", "Bob", "2", None)
    dropped = run(
        tmp_path / "b", "excel/reorder-columns", {"order": ["last", "id"], "others": "drop"}
    )
    assert table(dropped).rows() == [("Lee", "1"), (None, "2"), ("Diaz", "3"), ("de la Cruz", "4")]
    assert dropped.result == {"rows_in": 4, "rows_out": 4, "columns": ["last", "id"], "dropped": 2}
    fails(tmp_path / "c", "excel/reorder-columns", {"order": ["nope"]}, "column_not_found")
    for bad in [{"order": []}, {"order": ["a", "a"]}, {"order": ["a"], "others": "start"}]:
        rejects("excel/reorder-columns", bad)


# ---------------------------------------------------------------- add-column


def test_add_column_from_a_template(tmp_path: Path) -> None:
    out = run(
        tmp_path, "excel/add-column", {"name": "label", "template": "{last}, {first} {{#{id}}}"}
    )
    assert table(out)["label"].to_list() == [
        "Lee, Ann {#1}",
        ", Bob {#2}",
        "Diaz,  {#3}",
        "de la Cruz, Cy {#4}",
    ]
    assert table(out).columns[-1] == "label"
    fails(
        tmp_path / "b",
        "excel/add-column",
        {"name": "x", "template": "{first} {nick}"},
        "column_not_found",
    )
    op = load_all().get("excel/add-column")
    assert op is not None and op.input_columns is not None
    args = op.args_model.model_validate({"name": "x", "template": "{a}{b}{a}"})
    assert op.input_columns(args) == ["a", "b"]


def test_add_column_value_and_row_numbers(tmp_path: Path) -> None:
    out = run(tmp_path, "excel/add-column", {"name": "src", "value": 7, "position": "start"})
    assert table(out).rows()[0] == ("7", "1", "Ann", "Lee", "Oslo")
    numbered = run(
        tmp_path / "b", "excel/add-column", {"name": "n", "row_number": True, "start": 10}
    )
    assert table(numbered)["n"].to_list() == [10, 11, 12, 13]
    fails(tmp_path / "c", "excel/add-column", {"name": "city", "value": "x"}, "column_exists")


def test_add_column_arguments() -> None:
    for bad in [
        {"name": "x"},
        {"name": "x", "value": "a", "template": "{a}"},
        {"name": "x", "value": "a", "row_number": True},
        {"name": "x", "value": "a", "start": 3},
        {"name": "x", "template": "{a"},
        {"name": "x", "template": "a}"},
        {"name": "x", "template": "{}"},
        {"name": "x", "template": ""},
        {"name": "", "value": "a"},
        {"name": "x", "value": "a", "position": "middle"},
    ]:
        rejects("excel/add-column", bad)


# ---------------------------------------------------------------- split-column

NAMES = pl.DataFrame(
    {
        "id": ["1", "2", "3", "4"],
        "full": ["Ann Lee", "Bob", "Cy  de la Cruz", None],
        "tags": ["a; b;c", "x", "p ;q;r;s", "z"],
    }
)


def test_split_into_named_columns_keeps_the_rest_in_the_last(tmp_path: Path) -> None:
    out = run(
        tmp_path,
        "excel/split-column",
        {"column": "full", "delimiter": " ", "into": ["first", "last"]},
        NAMES,
    )
    assert table(out).columns == ["id", "first", "last", "tags"]
    assert table(out).select("first", "last").rows() == [
        ("Ann", "Lee"),
        ("Bob", None),
        ("Cy", "de la Cruz"),
        (None, None),
    ]
    assert out.result == {
        "rows_in": 4,
        "rows_out": 4,
        "columns_created": ["first", "last"],
        "rows_with_more_parts": 1,
        "rows_with_fewer_parts": 1,
    }


def test_split_by_regex_with_prefix_and_limits(tmp_path: Path) -> None:
    out = run(
        tmp_path,
        "excel/split-column",
        {"column": "tags", "regex": r"\s*;\s*", "keep_original": True},
        NAMES,
    )
    assert table(out).columns == ["id", "full", "tags", "tags_1", "tags_2", "tags_3", "tags_4"]
    assert table(out).select("^tags_.*$").rows() == [
        ("a", "b", "c", None),
        ("x", None, None, None),
        ("p", "q", "r", "s"),
        ("z", None, None, None),
    ]
    limited = run(
        tmp_path / "b",
        "excel/split-column",
        {"column": "tags", "regex": r"\s*;\s*", "into_prefix": "t", "max_splits": 1},
        NAMES,
    )
    assert table(limited).select("t_1", "t_2").rows() == [
        ("a", "b;c"),
        ("x", None),
        ("p", "q;r;s"),
        ("z", None),
    ]
    named = run(
        tmp_path / "c",
        "excel/split-column",
        {"column": "full", "regex": " +", "into": ["full", "rest"]},
        NAMES,
    )
    assert table(named).select("full", "rest").rows() == [
        ("Ann", "Lee"),
        ("Bob", None),
        ("Cy", "de la Cruz"),
        (None, None),
    ]


def test_split_failures_and_arguments(tmp_path: Path) -> None:
    fails(
        tmp_path,
        "excel/split-column",
        {"column": "full", "delimiter": " ", "into": ["id", "x"]},
        "column_exists",
        NAMES,
    )
    fails(
        tmp_path / "b",
        "excel/split-column",
        {"column": "nope", "delimiter": " "},
        "column_not_found",
        NAMES,
    )
    for bad in [
        {"column": "a"},
        {"column": "a", "delimiter": ",", "regex": ","},
        {"column": "a", "delimiter": ""},
        {"column": "a", "regex": "("},
        {"column": "a", "regex": "x*"},
        {"column": "a", "delimiter": ",", "into": ["x"]},
        {"column": "a", "delimiter": ",", "into": ["x", "x"]},
        {"column": "a", "delimiter": ",", "into": ["x", "y"], "into_prefix": "p"},
        {"column": "a", "delimiter": ",", "into": ["x", "y"], "max_splits": 2},
        {"column": "a", "delimiter": ",", "max_splits": 0},
    ]:
        rejects("excel/split-column", bad)
    op = load_all().get("excel/split-column")
    assert op is not None
    with pytest.raises(ValidationError) as caught:
        op.args_model.model_validate({"column": "a", "regex": "("})
    assert caught.value.errors()[0]["type"] == "invalid_regex"


# ---------------------------------------------------------------- merge-columns


def test_merge_skips_empty_cells_and_takes_the_first_place(tmp_path: Path) -> None:
    out = run(
        tmp_path,
        "excel/merge-columns",
        {"columns": ["last", "first"], "separator": ", ", "into": "name"},
    )
    assert table(out).columns == ["id", "name", "city"]
    assert table(out)["name"].to_list() == ["Lee, Ann", "Bob", "Diaz", "de la Cruz, Cy"]
    assert out.result == {"rows_in": 4, "rows_out": 4, "column": "name", "empty_rows": 0}


def test_merge_without_skipping_and_keeping_the_originals(tmp_path: Path) -> None:
    df = pl.DataFrame(
        {"a": ["x", None, "  ", "p"], "b": ["y", "z", None, "q"], "c": ["1", "2", "3", "4"]}
    )
    out = run(
        tmp_path,
        "excel/merge-columns",
        {
            "columns": ["a", "b"],
            "separator": "-",
            "into": "ab",
            "skip_empty": False,
            "keep_original": True,
        },
        df,
    )
    assert table(out).rows() == [
        ("x", "y", "x-y", "1"),
        (None, "z", "-z", "2"),
        ("  ", None, None, "3"),
        ("p", "q", "p-q", "4"),
    ]
    assert out.result is not None and out.result["empty_rows"] == 1
    fails(
        tmp_path / "b",
        "excel/merge-columns",
        {"columns": ["a", "b"], "into": "c"},
        "column_exists",
        df,
    )
    fails(
        tmp_path / "c",
        "excel/merge-columns",
        {"columns": ["a", "zz"], "into": "m"},
        "column_not_found",
        df,
    )
    for bad in [
        {"columns": ["a"], "into": "m"},
        {"columns": ["a", "a"], "into": "m"},
        {"columns": ["a", "b"]},
        {"columns": ["a", "b"], "into": " "},
    ]:
        rejects("excel/merge-columns", bad)


def test_merge_output_writes_a_file(tmp_path: Path) -> None:
    out = run(
        tmp_path,
        "excel/merge-columns",
        {"columns": ["first", "last"], "into": "name", "output": "names.xlsx"},
    )
    (written,) = out.files
    assert written.path.exists() and out.wrote_table
    assert read_table(written.path, kind="xlsx")["name"].to_list() == [
        "Ann Lee",
        "Bob",
        "Diaz",
        "Cy de la Cruz",
    ]


def test_examples_of_these_operations_validate() -> None:
    registry = load_all()
    for name in [
        "excel/select-columns",
        "excel/rename-columns",
        "excel/reorder-columns",
        "excel/add-column",
        "excel/split-column",
        "excel/merge-columns",
    ]:
        op = registry.get(name)
        assert op is not None
        op.args_model.model_validate(op.example)
        schema = op.json_schema()
        assert all("description" in prop for prop in schema["properties"].values()), name


def test_split_refuses_to_make_too_many_columns(tmp_path: Path) -> None:
    wide = pl.DataFrame({"a": [",".join(["x"] * 1200), "y"]})
    error = fails(
        tmp_path, "excel/split-column", {"column": "a", "delimiter": ","}, "too_many_parts", wide
    )
    assert error.details == {"parts": 1200}
    limited = run(
        tmp_path / "b",
        "excel/split-column",
        {"column": "a", "delimiter": ",", "max_splits": 2},
        wide,
    )
    assert table(limited).rows() == [("x", "x", ",".join(["x"] * 1198)), ("y", None, None)]
