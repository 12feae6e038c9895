"""Text operations: find/replace, clean text, normalize codes, convert types."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import polars as pl
import pytest
from pydantic import ValidationError

from chatflow.failures import StepFailed
from chatflow.operations import load_all
from chatflow.operations.registry import StepOutput
from chatflow.spreadsheets.reading import read_table
from tests.fixtures_util import TYPED as TYPED_COLUMNS
from tests.fixtures_util import TYPED_SCHEMA
from tests.step_harness import StepHarness
from tests.support import create_chat, upload, write_xlsx

PRICES = pl.DataFrame(
    {
        "item": ["a.b (x)", "A.B (X)", "cab", "N/A", None],
        "price": ["$1.50", "2.00", "3", "n/a", "$10"],
    }
)


# The shared typed frame, with spaces around two codes for the text operations to trim.
TYPED = TYPED_COLUMNS.with_columns(code=pl.Series([" 007", "0123 ", None, "42"]))


def run(
    tmp_path: Path, operation: str, arguments: dict[str, Any], df: pl.DataFrame = PRICES
) -> StepOutput:
    return StepHarness(tmp_path, df).run(operation, arguments)


def rows(out: StepOutput) -> list[tuple[Any, ...]]:
    assert out.table is not None
    return out.table.rows()


def column(out: StepOutput, name: str) -> list[Any]:
    assert out.table is not None
    return out.table[name].to_list()


def rejects(operation: str, arguments: Any) -> ValidationError:
    op = load_all().get(operation)
    assert op is not None
    with pytest.raises(ValidationError) as caught:
        op.args_model.model_validate(arguments)
    return caught.value


def fails(
    tmp_path: Path, operation: str, arguments: dict[str, Any], code: str, df: pl.DataFrame = PRICES
) -> StepFailed:
    with pytest.raises(StepFailed) as caught:
        run(tmp_path, operation, arguments, df)
    assert caught.value.code == code, caught.value.message
    return caught.value


# ---------------------------------------------------------------- find-replace


def test_find_is_literal_by_default(tmp_path: Path) -> None:
    harness = StepHarness(tmp_path, PRICES)
    out = harness.run("excel/find-replace", {"find": ".b (x", "replace": "$0"})
    assert rows(out) == [
        ("a$0)", "$1.50"),
        ("A.B (X)", "2.00"),
        ("cab", "3"),
        ("N/A", "n/a"),
        (None, "$10"),
    ]
    assert out.result == {"rows_in": 5, "rows_out": 5, "cells_changed": 1, "by_column": {"item": 1}}
    assert harness.reports[2] == (50, "Replacing '.b (x' with '$0' in all text columns")


def test_find_ignoring_case_whole_cells_and_regex(tmp_path: Path) -> None:
    insensitive = run(
        tmp_path / "1",
        "excel/find-replace",
        {"columns": ["item"], "find": "(X)", "replace": "[y]", "case_sensitive": False},
    )
    assert column(insensitive, "item") == ["a.b [y]", "A.B [y]", "cab", "N/A", None]
    whole = run(
        tmp_path / "2",
        "excel/find-replace",
        {"find": "n/a", "replace": "", "whole_cell": True, "case_sensitive": False},
    )
    assert rows(whole) == [
        ("a.b (x)", "$1.50"),
        ("A.B (X)", "2.00"),
        ("cab", "3"),
        (None, None),
        (None, "$10"),
    ]
    assert whole.result is not None and whole.result["cells_changed"] == 2
    regex = run(
        tmp_path / "3",
        "excel/find-replace",
        {"columns": ["price"], "find": r"^\$(\d+)", "replace": "USD ${1}", "regex": True},
    )
    assert column(regex, "price") == ["USD 1.50", "2.00", "3", "n/a", "USD 10"]
    whole_regex = run(
        tmp_path / "4",
        "excel/find-replace",
        {
            "columns": ["price"],
            "find": r"(\d)\.00",
            "replace": "$1",
            "regex": True,
            "whole_cell": True,
        },
    )
    assert column(whole_regex, "price") == ["$1.50", "2", "3", "n/a", "$10"]


def test_find_replace_arguments_and_missing_column(tmp_path: Path) -> None:
    for bad in [
        {"find": "", "replace": "x"},
        {"find": "a"},
        {"find": "a", "replace": "b", "columns": []},
        {"find": "a", "replace": "b", "mode": "x"},
    ]:
        rejects("excel/find-replace", bad)
    error = rejects("excel/find-replace", {"find": "[a-", "replace": "", "regex": True})
    assert error.errors()[0]["type"] == "invalid_regex"
    # valid alone, but not as a whole-cell match (the comment swallows the closing group)
    rejects(
        "excel/find-replace",
        {"find": "(?x)a # c", "replace": "", "regex": True, "whole_cell": True},
    )
    fails(
        tmp_path,
        "excel/find-replace",
        {"columns": ["cost"], "find": "a", "replace": "b"},
        "column_not_found",
    )


def test_find_replace_refuses_a_named_column_that_is_not_text(tmp_path: Path) -> None:
    for i, (name, kind) in enumerate(
        [
            ("id", "integer"),
            ("amount", "float"),
            ("ok", "boolean"),
            ("day", "date"),
            ("at", "datetime"),
        ]
    ):
        error = fails(
            tmp_path / str(i),
            "excel/find-replace",
            {"columns": ["code", name], "find": "1", "replace": "2"},
            "column_type_mismatch",
            TYPED,
        )
        assert error.details == {"column": name, "type": kind}
        assert error.message.startswith(f"Column '{name}' holds {kind} values; ")
        assert "excel/find-replace works on text columns only" in error.message


def test_find_replace_by_default_leaves_typed_columns_alone(tmp_path: Path) -> None:
    out = run(tmp_path, "excel/find-replace", {"find": "0", "replace": "o"}, TYPED)
    assert out.table is not None and dict(out.table.schema) == TYPED_SCHEMA
    assert out.table.drop("code").equals(TYPED.drop("code"))
    assert column(out, "code") == [" oo7", "o123 ", None, "42"]
    assert out.result == {"rows_in": 4, "rows_out": 4, "cells_changed": 2, "by_column": {"code": 2}}


def test_find_replace_output_writes_a_file(tmp_path: Path) -> None:
    out = run(
        tmp_path,
        "excel/find-replace",
        {"columns": ["price"], "find": "$", "replace": "", "output": "clean.csv"},
    )
    (written,) = out.files
    assert written.path.exists() and out.wrote_table
    assert read_table(written.path, kind="csv")["price"].to_list() == [
        "1.50",
        "2.00",
        "3",
        "n/a",
        "10",
    ]


# ---------------------------------------------------------------- clean-text

MESSY = pl.DataFrame(
    {
        "name": ["  ann\u00a0  LEE ", "bob\u200b\tsmith", "\x07", "o'neil\nmary  jo", None],
        "code": [" A1 ", "b2", "c 3", "d4", "e5"],
    }
)


def test_clean_text_defaults_and_case(tmp_path: Path) -> None:
    out = run(tmp_path / "1", "excel/clean-text", {"columns": ["name"]}, MESSY)
    assert column(out, "name") == ["ann LEE", "bob smith", None, "o'neil\nmary jo", None]
    assert column(out, "code") == [" A1 ", "b2", "c 3", "d4", "e5"]
    assert out.result == {"rows_in": 5, "rows_out": 5, "cells_changed": 4, "by_column": {"name": 4}}
    titled = run(tmp_path / "2", "excel/clean-text", {"case": "title"}, MESSY)
    assert rows(titled) == [
        ("Ann Lee", "A1"),
        ("Bob Smith", "B2"),
        (None, "C 3"),
        ("O'Neil\nMary Jo", "D4"),
        (None, "E5"),
    ]
    upper = run(
        tmp_path / "3",
        "excel/clean-text",
        {"columns": ["code"], "case": "upper", "trim": False},
        MESSY,
    )
    assert column(upper, "code") == [" A1 ", "B2", "C 3", "D4", "E5"]


def test_clean_text_on_typed_columns(tmp_path: Path) -> None:
    error = fails(
        tmp_path / "1",
        "excel/clean-text",
        {"columns": ["code", "amount"]},
        "column_type_mismatch",
        TYPED,
    )
    assert error.details == {"column": "amount", "type": "float"}
    assert "excel/clean-text works on text columns only" in error.message
    out = run(tmp_path / "2", "excel/clean-text", {"case": "upper"}, TYPED)
    assert out.table is not None and dict(out.table.schema) == TYPED_SCHEMA
    assert out.table.drop("code").equals(TYPED.drop("code"))
    assert column(out, "code") == ["007", "0123", None, "42"]  # leading zeros kept
    assert out.result == {"rows_in": 4, "rows_out": 4, "cells_changed": 2, "by_column": {"code": 2}}
    # An all-empty column is text with no values: named, it is fine.
    empty = pl.DataFrame({"e": [None, None], "n": [1, 2]}, schema={"e": pl.String, "n": pl.Int64})
    blank = run(tmp_path / "3", "excel/clean-text", {"columns": ["e"]}, empty)
    assert rows(blank) == [(None, 1), (None, 2)]


def test_clean_text_arguments_and_missing_column(tmp_path: Path) -> None:
    for bad in [
        {"case": "camel"},
        {"columns": ["a", "a"]},
        {"trim": False, "collapse_spaces": False, "remove_non_printable": False},
    ]:
        rejects("excel/clean-text", bad)
    fails(tmp_path, "excel/clean-text", {"columns": ["nam"]}, "column_not_found", MESSY)


# ---------------------------------------------------------------- normalize-codes

CODES = pl.DataFrame(
    {
        "zip": [" 1234 ", "98765", "501", "123456", "D-12 345", "  ", None],
        "n": [str(i) for i in range(7)],
    }
)


def test_normalize_codes_pads_digit_codes(tmp_path: Path) -> None:
    out = run(tmp_path / "1", "excel/normalize-codes", {"column": "zip", "pad_to": 5}, CODES)
    assert column(out, "zip") == ["01234", "98765", "00501", "123456", "D-12 345", None, None]
    assert out.result == {
        "rows_in": 7,
        "rows_out": 7,
        "cells_changed": 3,
        "padded": 2,
        "too_long": 1,
        "not_digits": 1,
        "too_long_examples": ["123456"],
    }
    stripped = run(
        tmp_path / "2",
        "excel/normalize-codes",
        {"column": "zip", "pad_to": 6, "strip_non_digits": True, "pad_char": "_"},
        CODES,
    )
    assert column(stripped, "zip") == ["__1234", "_98765", "___501", "123456", "_12345", None, None]
    trimmed = run(tmp_path / "3", "excel/normalize-codes", {"column": "zip"}, CODES)
    assert column(trimmed, "zip") == ["1234", "98765", "501", "123456", "D-12 345", None, None]


def test_normalize_codes_pads_a_number_column_as_text(tmp_path: Path) -> None:
    numbers = pl.DataFrame(
        {"zip": [1234, 98765, 501, 123456, None], "n": [1.0, 2.0, 3.0, 4.0, 5.5]}
    )
    out = run(tmp_path / "1", "excel/normalize-codes", {"column": "zip", "pad_to": 5}, numbers)
    assert out.table is not None and out.table.schema["zip"] == pl.String
    assert column(out, "zip") == ["01234", "98765", "00501", "123456", None]
    assert out.table.schema["n"] == pl.Float64
    assert out.result == {
        "rows_in": 5,
        "rows_out": 5,
        "cells_changed": 2,
        "padded": 2,
        "too_long": 1,
        "not_digits": 0,
        "too_long_examples": ["123456"],
        "as_text": {"zip": "integer"},
    }
    assert out.message == (
        "Normalized 2 codes in 'zip'; used 'zip' (integer) as text, the result is text"
    )
    floats = run(tmp_path / "2", "excel/normalize-codes", {"column": "n", "pad_to": 3}, numbers)
    assert column(floats, "n") == ["001", "002", "003", "004", "5.5"]  # no "1.0" -> "1.0"
    assert floats.result is not None and floats.result["not_digits"] == 1
    written = run(
        tmp_path / "3",
        "excel/normalize-codes",
        {"column": "zip", "pad_to": 5, "output": "zips.xlsx"},
        numbers,
    )
    sheet = openpyxl.load_workbook(written.files[0].path).active
    assert sheet is not None
    cells = [sheet.cell(row=r, column=1) for r in range(2, 5)]
    assert [(c.data_type, c.value) for c in cells] == [
        ("s", "01234"),
        ("s", "98765"),
        ("s", "00501"),
    ]
    for i, (name, kind) in enumerate([("day", "date"), ("ok", "boolean"), ("at", "datetime")]):
        error = fails(
            tmp_path / f"x{i}",
            "excel/normalize-codes",
            {"column": name, "pad_to": 5},
            "column_type_mismatch",
            TYPED,
        )
        assert error.details == {"column": name, "type": kind}
    text = run(tmp_path / "4", "excel/normalize-codes", {"column": "code", "pad_to": 5}, TYPED)
    assert column(text, "code") == ["00007", "00123", None, "00042"]
    assert text.result is not None and "as_text" not in text.result


def test_normalize_codes_arguments_and_missing_column(tmp_path: Path) -> None:
    for bad in [
        {},
        {"column": "z", "pad_to": 0},
        {"column": "z", "pad_char": "00"},
        {"column": "z", "pad_char": ""},
        {"columns": ["z"]},
    ]:
        rejects("excel/normalize-codes", bad)
    fails(tmp_path, "excel/normalize-codes", {"column": "postal"}, "column_not_found", CODES)


def test_normalize_codes_output_writes_a_file(tmp_path: Path) -> None:
    out = run(
        tmp_path,
        "excel/normalize-codes",
        {"column": "zip", "pad_to": 5, "output": "zips.xlsx"},
        CODES,
    )
    (written,) = out.files
    assert written.path.exists()
    assert read_table(written.path, kind="xlsx")["zip"].to_list()[:3] == ["01234", "98765", "00501"]


# ---------------------------------------------------------------- convert-types

RAW = pl.DataFrame(
    {
        "qty": ["1", " 2 ", "1,234", "x", None, "3.0", "3.5"],
        "when": ["29/02/2024", "2024-01-05 00:00:00", "x", None, " ", "31/12/2023", "30/02/2024"],
        "flag": ["Yes", "no", "1", "0", "TRUE", "maybe", None],
        "eu": ["3,5", "1.234,5", "-0,25", "1 000", "7", None, "1.5"],
    }
)


def test_convert_to_numbers(tmp_path: Path) -> None:
    ints = run(tmp_path / "1", "excel/convert-types", {"column": "qty", "to": "int"}, RAW)
    assert ints.table is not None and ints.table.schema["qty"] == pl.Int64
    assert column(ints, "qty") == [1, 2, 1234, None, None, 3, None]
    assert ints.result == {
        "rows_in": 7,
        "rows_out": 7,
        "converted": 4,
        "failed": 2,
        "failures": {"qty": {"count": 2, "examples": ["x", "3.5"]}},
    }
    floats = run(
        tmp_path / "2",
        "excel/convert-types",
        {"column": "eu", "to": "float", "decimal_comma": True},
        RAW,
    )
    assert column(floats, "eu") == [3.5, 1234.5, -0.25, 1000.0, 7.0, None, None]
    kept = run(
        tmp_path / "3",
        "excel/convert-types",
        {"column": "qty", "to": "float", "on_error": "keep"},
        RAW,
    )
    assert kept.table is not None and kept.table.schema["qty"] == pl.String
    assert column(kept, "qty") == ["1", "2", "1234", "x", None, "3", "3.5"]


def test_convert_to_dates_bools_and_back(tmp_path: Path) -> None:
    dates = run(
        tmp_path / "1",
        "excel/convert-types",
        {"columns": ["when"], "to": "date", "format": "%d/%m/%Y"},
        RAW,
    )
    assert column(dates, "when") == [
        dt.date(2024, 2, 29),
        dt.date(2024, 1, 5),
        None,
        None,
        None,
        dt.date(2023, 12, 31),
        None,
    ]
    stamps = run(
        tmp_path / "2",
        "excel/convert-types",
        {"column": "when", "to": "datetime", "on_error": "keep"},
        RAW,
    )
    assert column(stamps, "when") == [
        "29/02/2024",
        "2024-01-05 00:00:00",
        "x",
        None,
        None,
        "31/12/2023",
        "30/02/2024",
    ]
    flags = run(tmp_path / "3", "excel/convert-types", {"column": "flag", "to": "bool"}, RAW)
    assert column(flags, "flag") == [True, False, True, False, True, None, None]
    typed = pl.DataFrame({"d": [dt.date(2024, 2, 29), None], "f": [1.0, 2.5]})
    harness = StepHarness(tmp_path / "4", RAW)
    harness.files.current = typed  # the table a previous step handed on
    back = harness.run("excel/convert-types", {"columns": ["d", "f"], "to": "string"})
    assert rows(back) == [("2024-02-29", "1"), (None, "2.5")]


def test_convert_fail_names_the_first_bad_value(tmp_path: Path) -> None:
    error = fails(
        tmp_path,
        "excel/convert-types",
        {"column": "qty", "to": "int", "on_error": "fail"},
        "conversion_failed",
        RAW,
    )
    assert error.message == (
        "Cannot convert 'x' in column 'qty', row 4, to a whole number "
        "(2 values in this column cannot be converted)."
    )
    assert error.details == {"column": "qty", "row": 4, "value": "x", "failed": 2}


def test_convert_arguments_and_missing_column(tmp_path: Path) -> None:
    for bad in [
        {"to": "int"},
        {"column": "a", "columns": ["b"], "to": "int"},
        {"column": "a", "to": "decimal"},
        {"column": "a", "to": "int", "format": "%d"},
        {"column": "a", "to": "date", "format": "dd/mm/yyyy"},
        {"column": "a", "to": "date", "format": "%d/%m/%Q"},
        {"column": "a", "to": "date", "decimal_comma": True},
        {"column": "a", "to": "int", "on_error": "ignore"},
        {"columns": [], "to": "int"},
    ]:
        rejects("excel/convert-types", bad)
    fails(
        tmp_path,
        "excel/convert-types",
        {"columns": ["qty", "price"], "to": "int"},
        "column_not_found",
        RAW,
    )


def test_convert_output_writes_typed_cells(tmp_path: Path) -> None:
    out = run(
        tmp_path, "excel/convert-types", {"column": "qty", "to": "int", "output": "typed.xlsx"}, RAW
    )
    (written,) = out.files
    assert written.path.exists()
    back = read_table(written.path, kind="xlsx")
    assert back.schema["qty"] == pl.Int64
    assert back["qty"].to_list() == [1, 2, 1234, None, None, 3, None]
    sheet = openpyxl.load_workbook(written.path).active
    assert sheet is not None
    cells = [sheet.cell(row=r, column=1) for r in range(2, 9)]
    assert [(c.data_type, c.value) for c in cells] == [
        ("n", 1),
        ("n", 2),
        ("n", 1234),
        ("n", None),
        ("n", None),
        ("n", 3),
        ("n", None),
    ]
    assert all(type(c.value) is int for c in cells if c.value is not None)


def test_convert_a_mixed_xlsx_column_and_csv_text(tmp_path: Path) -> None:
    # An xlsx column of numbers with a "n/a" is text, its numbers as they read.
    rows: list[list[Any]] = [["v", "k"], [120, 1], [3.5, 2], ["n/a", 3], [None, 4], ["0042", 5]]
    mixed = read_table(write_xlsx(tmp_path / "mixed.xlsx", rows), kind="xlsx")
    assert dict(mixed.schema) == {"v": pl.String, "k": pl.Int64}
    assert mixed["v"].to_list() == ["120", "3.5", "n/a", None, "0042"]
    out = run(tmp_path / "1", "excel/convert-types", {"column": "v", "to": "float"}, mixed)
    assert out.table is not None and out.table.schema["v"] == pl.Float64
    assert column(out, "v") == [120.0, 3.5, None, None, 42.0]
    assert out.result is not None
    assert out.result["failures"] == {"v": {"count": 1, "examples": ["n/a"]}}
    # Decimal commas and thousands separators stay text in csv; converted on request.
    eu = pl.DataFrame({"p": ["1.234,5", "3,5", "0,25", None], "q": ["1,234", "12", "7", "0"]})
    harness = StepHarness(tmp_path / "2", eu, input_name="eu.csv")
    read = read_table(harness.files.input_path, kind="csv")
    assert dict(read.schema) == {"p": pl.String, "q": pl.String}
    floats = harness.run(
        "excel/convert-types", {"column": "p", "to": "float", "decimal_comma": True}
    )
    assert floats.table is not None and floats.table.schema["p"] == pl.Float64
    assert column(floats, "p") == [1234.5, 3.5, 0.25, None]
    ints = StepHarness(tmp_path / "3", eu, input_name="eu.csv").run(
        "excel/convert-types", {"column": "q", "to": "int"}
    )
    assert ints.table is not None and ints.table.schema["q"] == pl.Int64
    assert column(ints, "q") == [1234, 12, 7, 0]


def test_convert_typed_columns(tmp_path: Path) -> None:
    def convert(i: int, column_name: str, to: str, **more: Any) -> StepOutput:
        return run(
            tmp_path / str(i),
            "excel/convert-types",
            {"column": column_name, "to": to, **more},
            TYPED,
        )

    cases: list[tuple[str, str, pl.DataType, list[Any], int, dict[str, Any]]] = [
        (
            "amount",
            "int",
            pl.Int64(),
            [120, -80, None, None],
            2,
            {"amount": {"count": 1, "examples": ["3.5"]}},
        ),
        ("id", "float", pl.Float64(), [1.0, 2.0, 3.0, None], 3, {}),
        (
            "id",
            "bool",
            pl.Boolean(),
            [True, None, None, None],
            1,
            {"id": {"count": 2, "examples": ["2", "3"]}},
        ),
        ("ok", "int", pl.Int64(), [1, 0, None, 1], 3, {}),
        ("ok", "float", pl.Float64(), [1.0, 0.0, None, 1.0], 3, {}),
        ("id", "int", pl.Int64(), [1, 2, 3, None], 3, {}),
        (
            "day",
            "datetime",
            pl.Datetime("us"),
            [dt.datetime(2024, 1, 31), None, dt.datetime(2023, 12, 1), dt.datetime(2024, 2, 29)],
            3,
            {},
        ),
        (
            "at",
            "date",
            pl.Date(),
            [dt.date(2024, 1, 31), dt.date(2024, 1, 31), None, dt.date(2024, 1, 1)],
            3,
            {},
        ),
        ("amount", "string", pl.String(), ["120", "-80", "3.5", None], 3, {}),
        ("amount", "text", pl.String(), ["120", "-80", "3.5", None], 3, {}),
        ("id", "string", pl.String(), ["1", "2", "3", None], 3, {}),
        ("ok", "string", pl.String(), ["true", "false", None, "true"], 3, {}),
        ("day", "string", pl.String(), ["2024-01-31", None, "2023-12-01", "2024-02-29"], 3, {}),
        (
            "at",
            "string",
            pl.String(),
            ["2024-01-31 13:45:00", "2024-01-31 08:00:01.500000", None, "2024-01-01 00:00:00"],
            3,
            {},
        ),
    ]
    for i, (name, to, dtype, values, converted, failures) in enumerate(cases):
        out = convert(i, name, to)
        assert out.table is not None and out.table.schema[name] == dtype, (name, to)
        assert column(out, name) == values, (name, to)
        failed = sum(f["count"] for f in failures.values())
        assert out.result == {
            "rows_in": 4,
            "rows_out": 4,
            "converted": converted,
            "failed": failed,
            "failures": failures,
        }, (name, to)
        assert dict(out.table.drop(name).schema) == {
            c: t for c, t in TYPED_SCHEMA.items() if c != name
        }
    # keep: a typed column that does not all convert stays as it was.
    kept = convert(100, "amount", "int", on_error="keep")
    assert kept.table is not None and kept.table.schema["amount"] == pl.Float64
    assert column(kept, "amount") == [120.0, -80.0, 3.5, None]
    assert kept.result is not None and kept.result["converted"] == 0
    assert (
        kept.message
        == "Converted 0 values to int; 1 value could not be converted (kept as they were)"
    )
    whole = convert(101, "id", "float", on_error="keep")
    assert whole.table is not None and whole.table.schema["id"] == pl.Float64
    error = fails(
        tmp_path / "102",
        "excel/convert-types",
        {"column": "amount", "to": "int", "on_error": "fail"},
        "conversion_failed",
        TYPED,
    )
    assert error.details == {"column": "amount", "row": 3, "value": "3.5", "failed": 1}


def test_convert_refuses_conversions_between_unrelated_types(tmp_path: Path) -> None:
    for i, (name, kind, to) in enumerate(
        [
            ("day", "date", "int"),
            ("at", "datetime", "float"),
            ("day", "date", "bool"),
            ("id", "integer", "date"),
            ("amount", "float", "datetime"),
            ("ok", "boolean", "date"),
        ]
    ):
        error = fails(
            tmp_path / str(i),
            "excel/convert-types",
            {"columns": ["code", name], "to": to},
            "column_type_mismatch",
            TYPED,
        )
        assert error.details == {"column": name, "type": kind}
        assert error.message.startswith(f"Column '{name}' holds {kind} values; ")
    error = fails(
        tmp_path / "m",
        "excel/convert-types",
        {"column": "day", "to": "int"},
        "column_type_mismatch",
        TYPED,
    )
    assert error.message == (
        "Column 'day' holds date values; excel/convert-types cannot make a whole number of it "
        "(a date column converts to date, datetime or string)."
    )


def test_a_type_mismatch_is_a_422_at_dry_run(client: httpx.Client, tmp_path: Path) -> None:
    chat_id = create_chat(client)
    rows: list[list[Any]] = [["name", "amount"], ["Ann", 120], ["Bob", 3.5]]
    assert upload(client, chat_id, write_xlsx(tmp_path / "d.xlsx", rows)).status_code == 201
    url = f"/api/v1/chat/workflows/{chat_id}/execute"
    step = {
        "operation": "excel/find-replace",
        "arguments": {"columns": ["amount"], "find": "1", "replace": "2"},
    }
    response = client.post(url, params={"dry_run": "true"}, json={"steps": [step]})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "column_type_mismatch"
    assert "Column 'amount' holds float values" in error["message"]


# ---------------------------------------------------------------- all of them


def test_examples_validate_and_fields_are_described() -> None:
    registry = load_all()
    for name in [
        "excel/find-replace",
        "excel/clean-text",
        "excel/normalize-codes",
        "excel/convert-types",
    ]:
        op = registry.get(name)
        assert op is not None
        op.args_model.model_validate(op.example)
        schema = op.json_schema()
        assert all("description" in prop for prop in schema["properties"].values()), name


def test_a_regex_polars_refuses_while_running_is_invalid_regex() -> None:
    from chatflow.operations.text import FindReplaceArgs, find_replace

    args = FindReplaceArgs.model_construct(
        columns=None, find="(?x)a # c", replace="", regex=True, whole_cell=True, case_sensitive=True
    )
    with pytest.raises(StepFailed) as caught:
        find_replace(pl.DataFrame({"a": ["a"]}), args)
    assert caught.value.code == "invalid_regex"
    assert caught.value.details == {"pattern": "(?x)a # c"}
