"""Column operations: select, rename, reorder, add, split and merge columns."""

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
from tests.fixtures_util import TYPED, TYPED_SCHEMA
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
    out = run(
        tmp_path,
        "excel/select-columns",
        {"columns": ["id", "amount", "day", "code"], "output": "ids.csv"},
        TYPED,
    )
    (written,) = out.files
    assert out.wrote_table and written.name == "ids.csv" and written.path.exists()
    back = read_table(written.path, kind="csv")
    assert back.rows() == table(out).rows()
    assert dict(back.schema) == dict(table(out).schema)
    assert dict(back.schema) == {c: TYPED_SCHEMA[c] for c in ["id", "amount", "day", "code"]}
    # csv has no types: text made only of digits reads back as a number there.
    texts = run(
        tmp_path / "b", "excel/select-columns", {"columns": ["id", "city"], "output": "t.csv"}
    )
    assert table(texts).schema["id"] == pl.String
    assert read_table(texts.files[0].path, kind="csv").rows() == [
        (1, "Oslo"),
        (2, "Rome"),
        (3, "Lima"),
        (4, None),
    ]


def test_select_rename_reorder_keep_every_type(tmp_path: Path) -> None:
    kept = run(
        tmp_path / "1",
        "excel/select-columns",
        {"columns": ["code", "at", "day", "ok", "amount", "id"]},
        TYPED,
    )
    assert dict(table(kept).schema) == {c: TYPED_SCHEMA[c] for c in table(kept).columns}
    assert table(kept).rows() == [
        ("007", dt.datetime(2024, 1, 31, 13, 45), dt.date(2024, 1, 31), True, 120.0, 1),
        ("0123", dt.datetime(2024, 1, 31, 8, 0, 1, 500000), None, False, -80.0, 2),
        (None, None, dt.date(2023, 12, 1), None, 3.5, 3),
        ("42", dt.datetime(2024, 1, 1), dt.date(2024, 2, 29), True, None, None),
    ]
    dropped = run(
        tmp_path / "2", "excel/select-columns", {"columns": ["code"], "mode": "drop"}, TYPED
    )
    assert table(dropped).equals(TYPED.drop("code"))
    assert dict(table(dropped).schema) == {c: TYPED_SCHEMA[c] for c in TYPED.columns[:-1]}
    renamed = run(
        tmp_path / "3", "excel/rename-columns", {"mapping": {"amount": "total", "day": "d"}}, TYPED
    )
    assert table(renamed).columns == ["id", "total", "ok", "d", "at", "code"]
    assert table(renamed).schema["total"] == pl.Float64 and table(renamed).schema["d"] == pl.Date
    assert table(renamed).rows() == TYPED.rows()
    moved = run(
        tmp_path / "4", "excel/reorder-columns", {"order": ["ok", "id"], "others": "drop"}, TYPED
    )
    assert dict(table(moved).schema) == {"ok": pl.Boolean, "id": pl.Int64}
    assert table(moved).rows() == [(True, 1), (False, 2), (None, 3), (True, None)]


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
    assert table(out).rows()[0] == (7, "1", "Ann", "Lee", "Oslo")
    assert table(out).schema["src"] == pl.Int64
    assert out.result == {"rows_in": 4, "rows_out": 4, "column": "src", "type": "integer"}
    numbered = run(
        tmp_path / "b", "excel/add-column", {"name": "n", "row_number": True, "start": 10}
    )
    assert table(numbered)["n"].to_list() == [10, 11, 12, 13]
    assert table(numbered).schema["n"] == pl.Int64
    assert numbered.result is not None and numbered.result["type"] == "integer"
    fails(tmp_path / "c", "excel/add-column", {"name": "city", "value": "x"}, "column_exists")


def test_add_column_value_keeps_its_json_type(tmp_path: Path) -> None:
    cases: list[tuple[Any, pl.DataType, str, Any]] = [
        (7, pl.Int64(), "integer", 7),
        (0, pl.Int64(), "integer", 0),
        (-2.5, pl.Float64(), "float", -2.5),
        (True, pl.Boolean(), "boolean", True),
        ("7", pl.String(), "text", "7"),
        ("007", pl.String(), "text", "007"),
    ]
    for i, (value, dtype, kind, cell) in enumerate(cases):
        out = run(tmp_path / str(i), "excel/add-column", {"name": "v", "value": value}, TYPED)
        assert table(out).schema["v"] == dtype, value
        assert table(out)["v"].to_list() == [cell] * 4
        assert table(out).select(TYPED.columns).equals(TYPED)  # the other columns untouched
        assert out.result is not None and out.result["type"] == kind
        assert out.message == f"Added {kind} column 'v'"
    # JSON as a client sends it: 7 and "7" are different values.
    op = load_all().get("excel/add-column")
    assert op is not None
    assert op.args_model.model_validate_json('{"name": "v", "value": 7}').value == 7
    assert op.args_model.model_validate_json('{"name": "v", "value": "7"}').value == "7"
    rejects("excel/add-column", {"name": "v", "value": 2**63})


def test_add_column_written_to_xlsx_as_typed_cells(tmp_path: Path) -> None:
    cases: list[tuple[Any, str, type]] = [
        (0, "n", int),
        (2.5, "n", float),
        (False, "b", bool),
        ("0042", "s", str),
    ]
    for i, (value, data_type, python_type) in enumerate(cases):
        out = run(
            tmp_path / str(i), "excel/add-column", {"name": "v", "value": value, "output": "o.xlsx"}
        )
        (written,) = out.files
        sheet = openpyxl.load_workbook(written.path).active
        assert sheet is not None
        assert [c.value for c in sheet[1]] == ["id", "first", "last", "city", "v"]
        for row in range(2, 6):
            cell = sheet.cell(row=row, column=5)
            assert (cell.data_type, type(cell.value), cell.value) == (
                data_type,
                python_type,
                value,
            )


def test_add_column_template_uses_the_text_of_typed_cells(tmp_path: Path) -> None:
    out = run(
        tmp_path,
        "excel/add-column",
        {"name": "t", "template": "{id}|{amount}|{ok}|{day}|{at}|{code}"},
        TYPED,
    )
    assert table(out).schema["t"] == pl.String
    assert table(out)["t"].to_list() == [
        "1|120|true|2024-01-31|2024-01-31 13:45:00|007",
        "2|-80|false||2024-01-31 08:00:01.500000|0123",
        "3|3.5||2023-12-01||",
        "||true|2024-02-29|2024-01-01 00:00:00|42",
    ]
    assert out.result == {"rows_in": 4, "rows_out": 4, "column": "t", "type": "text"}
    assert out.message == "Added text column 't'"
    assert dict(table(out).drop("t").schema) == TYPED_SCHEMA


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


def test_split_a_typed_column_splits_its_text_and_says_so(tmp_path: Path) -> None:
    days = run(
        tmp_path / "1",
        "excel/split-column",
        {"column": "day", "delimiter": "-", "into": ["y", "m", "d"], "keep_original": True},
        TYPED,
    )
    assert table(days).columns == ["id", "amount", "ok", "day", "y", "m", "d", "at", "code"]
    assert table(days).schema["day"] == pl.Date  # the kept original keeps its type
    assert all(table(days).schema[c] == pl.String for c in ["y", "m", "d"])
    assert table(days).select("y", "m", "d").rows() == [
        ("2024", "01", "31"),
        (None, None, None),
        ("2023", "12", "01"),
        ("2024", "02", "29"),
    ]
    assert days.result is not None and days.result["as_text"] == {"day": "date"}
    assert (
        days.message == "Split 'day' into 3 columns; used 'day' (date) as text, the result is text"
    )
    amounts = run(
        tmp_path / "2",
        "excel/split-column",
        {"column": "amount", "delimiter": ".", "into": ["whole", "fraction"]},
        TYPED,
    )
    assert table(amounts).select("whole", "fraction").rows() == [
        ("120", None),  # 120.0 reads "120": no ".0" to split at
        ("-80", None),
        ("3", "5"),
        (None, None),
    ]
    assert table(amounts).schema["whole"] == pl.String
    assert amounts.result is not None and amounts.result["as_text"] == {"amount": "float"}
    stamps = run(tmp_path / "3", "excel/split-column", {"column": "at", "delimiter": " "}, TYPED)
    assert table(stamps).select("at_1", "at_2").rows() == [
        ("2024-01-31", "13:45:00"),
        ("2024-01-31", "08:00:01.500000"),
        (None, None),
        ("2024-01-01", "00:00:00"),
    ]
    texts = run(tmp_path / "4", "excel/split-column", {"column": "code", "delimiter": "1"}, TYPED)
    assert texts.result is not None and "as_text" not in texts.result
    assert table(texts).select("code_1", "code_2").rows() == [
        ("007", None),
        ("0", "23"),
        (None, None),
        ("42", None),
    ]


def test_merge_typed_columns_joins_their_text(tmp_path: Path) -> None:
    out = run(
        tmp_path,
        "excel/merge-columns",
        {"columns": ["id", "amount", "ok", "day", "code"], "separator": "/", "into": "m"},
        TYPED,
    )
    assert table(out).columns == ["m", "at"]
    assert table(out).schema["m"] == pl.String
    assert table(out)["m"].to_list() == [
        "1/120/true/2024-01-31/007",
        "2/-80/false/0123",
        "3/3.5/2023-12-01",
        "true/2024-02-29/42",
    ]
    assert out.result == {
        "rows_in": 4,
        "rows_out": 4,
        "column": "m",
        "empty_rows": 0,
        "as_text": {"id": "integer", "amount": "float", "ok": "boolean", "day": "date"},
    }
    assert out.message == (
        "Merged columns 'id', 'amount', 'ok', 'day', 'code' into 'm'; used 'id' (integer), "
        "'amount' (float), 'ok' (boolean), 'day' (date) as text, the result is text"
    )
    kept = run(
        tmp_path / "b",
        "excel/merge-columns",
        {"columns": ["at", "amount"], "into": "m", "skip_empty": False, "keep_original": True},
        TYPED,
    )
    assert dict(table(kept).drop("m").schema) == TYPED_SCHEMA
    assert table(kept)["m"].to_list() == [
        "2024-01-31 13:45:00 120",
        "2024-01-31 08:00:01.500000 -80",
        " 3.5",
        "2024-01-01 00:00:00 ",
    ]


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
