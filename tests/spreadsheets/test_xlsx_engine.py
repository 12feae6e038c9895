"""Both xlsx engines write the same cells: openpyxl and fastexcel read their files identically.

rustpy-xlsxwriter is a main dependency (the default engine), so these tests run (and fail
loudly if it is missing) wherever the test suite does.  What a server does without it is
tests/e2e/test_xlsx_fallback.py's.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import struct
import zipfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import fastexcel
import openpyxl
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatflow.failures import Cancelled, StepFailed
from chatflow.settings import Settings
from chatflow.spreadsheets import writing_rust
from chatflow.spreadsheets.writing import (
    DEFAULT_XLSX_ENGINE,
    EXCEL_MAX_COLS,
    EXCEL_MAX_ROWS,
    RUST_ENGINE,
    XLSX_ENGINES,
    check_xlsx_engine,
    write_workbook,
)
from chatflow.spreadsheets.writing_cells import excel_number, excel_numbers
from tests import support
from tests.fixtures_util import write_table_xlsx
from tests.support import make_settings, run_server

BIG = 2**53


def _mixed_frame() -> pl.DataFrame:
    """Every kind of value the policy treats specially, several of them in one column."""
    return pl.DataFrame(
        {
            "text": ["007", "=1+2", "+A1", "-x", "@SUM(A1)", "http://e.x", "héllo 😀", None],
            "int": [0, -2, BIG - 1, BIG, -BIG, 2**63 - 1, None, 5],
            "float": [1.5, 0.1 + 0.2, math.nan, math.inf, -math.inf, -0.0, None, 1 / 3],
            "date": [
                dt.date(2024, 1, 2),
                dt.date(1899, 12, 31),
                dt.date(1900, 1, 1),
                dt.date(1900, 2, 28),
                dt.date(1900, 3, 1),
                None,
                dt.date(9999, 12, 31),
                dt.date(1970, 1, 1),
            ],
            "datetime": [
                dt.datetime(2024, 1, 2, 3, 4, 5, 123456),
                dt.datetime(1800, 6, 1, 12, 0),
                dt.datetime(1900, 1, 1, 12, 0),
                dt.datetime(1900, 3, 1, 0, 0, 1),
                None,
                dt.datetime(2000, 2, 29, 23, 59, 59, 999999),
                dt.datetime(1970, 1, 1),
                dt.datetime(2024, 12, 31, 23, 59, 59),
            ],
            "time": [dt.time(0, 0), dt.time(12, 30, 15, 500000), None] + [dt.time(23, 59)] * 5,
            "bool": [True, False, None, True, False, True, False, True],
            "decimal": pl.Series(
                [Decimal("1.25"), Decimal("-3"), None, Decimal("12345678901234567.8")] * 2,
                dtype=pl.Decimal(20, 2),
            ),
            "duration": [dt.timedelta(hours=1), None] * 4,
            "category": pl.Series(["a", "b", None, "a"] * 2, dtype=pl.Categorical),
            "empty": pl.Series([None] * 8, dtype=pl.String),
        }
    )


def _plain_frame() -> pl.DataFrame:
    """One kind of cell per column: the rust engine's Arrow path."""
    return pl.DataFrame(
        {
            "id": ["00012", '=HYPERLINK("http://e.x")', " ", "ü"],
            "n": [1, 2, None, -7],
            "x": [0.5, 1e300, 2.0, None],
            "day": [dt.date(2024, 2, 29), None, dt.date(1900, 1, 1), dt.date(2000, 1, 1)],
            "at": [dt.datetime(2024, 1, 1, 8), None, dt.datetime(2024, 1, 1, 8, 0, 0, 1), None],
            "ok": [True, None, False, True],
        }
    )


def _workbook(engine: str, tmp_path: Path, sheets: dict[str, pl.DataFrame]) -> Path:
    dest = tmp_path / f"{engine}.xlsx"
    write_workbook(sheets, dest, engine=engine)
    return dest


def _openpyxl_cells(path: Path) -> dict[str, list[list[tuple[Any, str, str]]]]:
    """Per sheet, every cell as (value, data type, number format); numbers as floats, since
    openpyxl makes an int of "1" (xlsxwriter) and a float of "1.0" (rust_xlsxwriter)."""
    book = openpyxl.load_workbook(path)
    out = {}
    for ws in book.worksheets:
        rows = []
        for row in ws.iter_rows():
            cells = []
            for cell in row:
                value = cell.value
                if isinstance(value, int) and not isinstance(value, bool):
                    value = float(value)
                cells.append((value, cell.data_type, cell.number_format))
            rows.append(cells)
        out[ws.title] = rows
    return out


def _fastexcel_frames(path: Path) -> dict[str, pl.DataFrame]:
    reader = fastexcel.read_excel(path)
    return {name: reader.load_sheet(name).to_polars() for name in reader.sheet_names}


def _same_frames(a: dict[str, pl.DataFrame], b: dict[str, pl.DataFrame]) -> None:
    assert list(a) == list(b)
    for name in a:
        assert a[name].schema == b[name].schema, name
        assert a[name].equals(b[name], null_equal=True), name


def test_the_rust_engine_is_installed_for_the_tests() -> None:
    # Without it the engine comparisons below would compare xlsxwriter with itself.
    assert writing_rust.unavailable() is None


def test_both_engines_read_back_identically_with_mixed_columns(tmp_path: Path) -> None:
    sheets = {"Mixed": _mixed_frame(), "Plain": _plain_frame(), "Empty": _plain_frame().head(0)}
    ours = _workbook("xlsxwriter", tmp_path, sheets)
    rust = _workbook(RUST_ENGINE, tmp_path, sheets)
    assert _openpyxl_cells(ours) == _openpyxl_cells(rust)
    _same_frames(_fastexcel_frames(ours), _fastexcel_frames(rust))


def test_both_engines_read_back_identically_on_the_arrow_path(tmp_path: Path) -> None:
    sheets = {"One": _plain_frame(), "Two": _plain_frame().reverse()}
    ours = _workbook("xlsxwriter", tmp_path, sheets)
    rust = _workbook(RUST_ENGINE, tmp_path, sheets)
    assert _openpyxl_cells(ours) == _openpyxl_cells(rust)
    _same_frames(_fastexcel_frames(ours), _fastexcel_frames(rust))


@pytest.mark.parametrize("engine", XLSX_ENGINES)
def test_each_engine_writes_the_policy_exactly(engine: str, tmp_path: Path) -> None:
    cells = _openpyxl_cells(_workbook(engine, tmp_path, {"Mixed": _mixed_frame()}))["Mixed"]
    header = [value for value, _, _ in cells[0]]
    assert header == list(_mixed_frame().columns)
    assert all(kind == "s" for _, kind, _ in cells[0])
    column = {name: [row[i] for row in cells[1:]] for i, name in enumerate(header)}
    # Text stays inert text, however it starts.
    assert [v for v, _, _ in column["text"]] == [
        "007",
        "=1+2",
        "+A1",
        "-x",
        "@SUM(A1)",
        "http://e.x",
        "héllo 😀",
        None,
    ]
    assert {k for v, k, _ in column["text"] if v is not None} == {"s"}
    # Integers Excel cannot hold exactly are text.
    assert [(v, k) for v, k, _ in column["int"]] == [
        (0.0, "n"),
        (-2.0, "n"),
        (float(BIG - 1), "n"),
        (str(BIG), "s"),
        (str(-BIG), "s"),
        (str(2**63 - 1), "s"),
        (None, "n"),
        (5.0, "n"),
    ]
    assert [v for v, _, _ in column["float"]] == [1.5, 0.3, "nan", "inf", "-inf", 0.0, None, 1 / 3]
    assert [(v, f) for v, _, f in column["date"]] == [
        (dt.datetime(2024, 1, 2), "yyyy-mm-dd"),
        ("1899-12-31", "yyyy-mm-dd"),
        (dt.datetime(1900, 1, 1), "yyyy-mm-dd"),
        (dt.datetime(1900, 2, 28), "yyyy-mm-dd"),
        (dt.datetime(1900, 3, 1), "yyyy-mm-dd"),
        (None, "General"),
        (dt.datetime(9999, 12, 31), "yyyy-mm-dd"),
        (dt.datetime(1970, 1, 1), "yyyy-mm-dd"),
    ]
    assert column["datetime"][0] == (
        dt.datetime(2024, 1, 2, 3, 4, 5, 123000),
        "d",
        "yyyy-mm-dd hh:mm:ss",
    )
    assert column["datetime"][1] == ("1800-06-01T12:00:00", "s", "yyyy-mm-dd hh:mm:ss")
    assert column["time"][1] == (dt.time(12, 30, 15, 500000), "d", "hh:mm:ss")
    assert [v for v, _, _ in column["bool"]] == [True, False, None, True, False, True, False, True]
    assert [v for v, _, _ in column["decimal"][:4]] == [1.25, -3.0, None, "12345678901234567.80"]
    assert [v for v, _, _ in column["duration"][:2]] == ["1:00:00", None]
    assert [v for v, _, _ in column["category"][:3]] == ["a", "b", None]
    assert {v for v, _, _ in column["empty"]} == {None}


@pytest.mark.parametrize("engine", XLSX_ENGINES)
def test_each_engine_cleans_and_dedupes_sheet_names(engine: str, tmp_path: Path) -> None:
    df = pl.DataFrame({"a": [1]})
    dest = tmp_path / "names.xlsx"
    write_workbook({"a/b": df, "A_B": df, "History": df, "x" * 40: df}, dest, engine=engine)
    assert openpyxl.load_workbook(dest).sheetnames == ["a_b", "A_B_2", "History_", "x" * 31]


def test_a_sheet_named_general_keeps_its_formats_to_itself(tmp_path: Path) -> None:
    # rustpy-xlsxwriter would apply the "general" sheet's column formats to every sheet;
    # such a workbook goes to xlsxwriter instead.
    sheets = {"general": pl.DataFrame({"d": [dt.date(2024, 1, 1)]}), "B": pl.DataFrame({"d": [1]})}
    assert not writing_rust.can_write(sheets)
    cells = _openpyxl_cells(_workbook(RUST_ENGINE, tmp_path, sheets))
    assert cells["general"][1] == [(dt.datetime(2024, 1, 1), "d", "yyyy-mm-dd")]
    assert cells["B"][1] == [(1.0, "n", "General")]


@pytest.mark.parametrize("engine", XLSX_ENGINES)
def test_each_engine_enforces_excel_limits(engine: str, tmp_path: Path) -> None:
    dest = tmp_path / "big.xlsx"
    too_tall = pl.DataFrame({"a": pl.zeros(EXCEL_MAX_ROWS, dtype=pl.Int8, eager=True)})
    too_wide = pl.DataFrame({f"c{i}": [1] for i in range(EXCEL_MAX_COLS + 1)})
    too_long = pl.DataFrame({"a": ["ok", "ok"], "b": ["x", "😀" * 16_384]})
    for frame, code in ((too_tall, "too_many_rows"), (too_wide, "too_many_columns")):
        with pytest.raises(StepFailed) as failed:
            write_table_xlsx(frame, dest, engine=engine)
        assert failed.value.code == code
    with pytest.raises(StepFailed) as failed:
        write_table_xlsx(too_long, dest, engine=engine)
    assert failed.value.code == "value_too_long"
    assert str(failed.value.message).startswith("Row 2, column 'b':")
    assert not dest.exists()
    assert list(tmp_path.iterdir()) == []
    # 32,767 UTF-16 units exactly still fits.
    write_table_xlsx(pl.DataFrame({"a": ["😀" * 16_383 + "x"]}), dest, engine=engine)
    assert openpyxl.load_workbook(dest).active["A2"].value == "😀" * 16_383 + "x"


@pytest.mark.parametrize("frame", [_plain_frame, _mixed_frame], ids=["arrow", "records"])
def test_a_rust_write_reports_progress_and_can_be_cancelled(frame: Any, tmp_path: Path) -> None:
    big = pl.concat([frame()] * 50)
    seen: list[float] = []
    write_table_xlsx(big, tmp_path / "ok.xlsx", progress=seen.append, engine=RUST_ENGINE)
    assert seen == sorted(seen)
    assert seen[-1] == 1.0
    assert len(seen) >= 2

    def cancel_late(fraction: float) -> None:
        if fraction > 0.1:
            raise Cancelled()

    with pytest.raises(Cancelled):
        write_table_xlsx(big, tmp_path / "no.xlsx", progress=cancel_late, engine=RUST_ENGINE)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.xlsx"]


def test_an_empty_string_is_the_one_difference(tmp_path: Path) -> None:
    # rust_xlsxwriter stores no empty strings: its cell is empty where xlsxwriter's is "".
    sheets = {"S": pl.DataFrame({"a": ["", "x"]})}
    ours = _openpyxl_cells(_workbook("xlsxwriter", tmp_path, sheets))["S"]
    rust = _openpyxl_cells(_workbook(RUST_ENGINE, tmp_path, sheets))["S"]
    assert [row[0][:2] for row in ours] == [("a", "s"), ("", "s"), ("x", "s")]
    assert [row[0][:2] for row in rust] == [("a", "s"), (None, "n"), ("x", "s")]


def test_rust_is_the_default_engine_and_setting() -> None:
    assert DEFAULT_XLSX_ENGINE == RUST_ENGINE
    assert Settings.model_fields["xlsx_writer"].default == RUST_ENGINE
    assert check_xlsx_engine(RUST_ENGINE) == RUST_ENGINE  # installed here: no fallback


def test_check_xlsx_engine_honours_xlsxwriter_and_refuses_unknown_names(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert check_xlsx_engine("xlsxwriter") == "xlsxwriter"
    with pytest.raises(RuntimeError, match="Unknown xlsx writer 'openpyxl'"):
        check_xlsx_engine("openpyxl")
    assert caplog.records == []


def test_write_workbook_writes_with_rust_by_default(tmp_path: Path) -> None:
    sheets = {"S": pl.DataFrame({"n": [1]})}
    write_workbook(sheets, tmp_path / "default.xlsx")
    write_workbook(sheets, tmp_path / "xlsxwriter.xlsx", engine="xlsxwriter")
    xml = {}
    for name in ("default", "xlsxwriter"):
        with zipfile.ZipFile(tmp_path / f"{name}.xlsx") as archive:
            xml[name] = archive.read("xl/worksheets/sheet1.xml").decode()
    # rust_xlsxwriter spells a whole number 1.0, xlsxwriter 1.
    assert "<v>1.0</v>" in xml["default"]
    assert "<v>1</v>" in xml["xlsxwriter"]


def _random_doubles(count: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    out = []
    while len(out) < count:
        value = struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0]
        if math.isfinite(value):
            out.append(value)
    return out


@given(st.lists(st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False))))
def test_excel_numbers_rounds_exactly_as_excel_number(values: list[float | None]) -> None:
    got = excel_numbers(pl.Series("x", values, pl.Float64)).to_list()
    expected = [None if v is None else excel_number(v) for v in values]
    assert [(v, math.copysign(1, v)) if v is not None else None for v in got] == [
        (v, math.copysign(1, v)) if v is not None else None for v in expected
    ]


def test_excel_numbers_on_every_kind_of_double() -> None:
    # Random bit patterns (all magnitudes, mostly 17 digits), short decimals (as typed),
    # date-time serials, powers of two and the edges of the range.
    rng = random.Random(7)
    values = _random_doubles(20_000, seed=3)
    values += [round(rng.uniform(-1e4, 1e4), rng.randint(0, 6)) for _ in range(20_000)]
    values += [rng.randint(0, 60_000) + rng.random() / 86_400 for _ in range(20_000)]
    values += [0.1 + 0.2, 5e-324, -5e-324, 1.7976931348623157e308, 9.999999999999999e22]
    values += [0.1, 100.0, 1e20, 123456789012345678.0, 2.0**53 + 2]
    # Powers of two: their shortest text can round, at 16 digits, to the double below.
    values += [math.ldexp(sign, exp) for exp in range(-1074, 1024) for sign in (1.0, -1.0)]
    got = excel_numbers(pl.Series("x", values, pl.Float64)).to_list()
    assert got == [excel_number(v) for v in values]
    assert sum(g != v for g, v in zip(got, values, strict=True)) > 10_000  # rounding did happen


def test_a_server_writes_with_the_engine_it_is_set_to_or_rust_by_default(
    tmp_path: Path,
) -> None:
    rows = [
        ["customer_id", "city"],
        ["00042", '=HYPERLINK("http://x")'],
        ["7", "Zürich"],
    ]
    source = support.write_xlsx(tmp_path / "in.xlsx", rows)
    cells, xml = {}, {}
    # Set to xlsxwriter, the setting is honoured; left alone, the server writes with Rust.
    for engine, overrides in (("xlsxwriter", {"xlsx_writer": "xlsxwriter"}), (RUST_ENGINE, {})):
        settings = make_settings(tmp_path / engine, **overrides)
        out = tmp_path / f"{engine}.xlsx"
        with run_server(settings) as server:
            cells[engine] = support.numbered_output(server.url, source, out)
        with zipfile.ZipFile(out) as archive:
            xml[engine] = archive.read("xl/worksheets/sheet1.xml").decode()
    assert cells["xlsxwriter"] == [
        [("customer_id", "s"), ("city", "s"), ("n", "s")],
        [("00042", "s"), ('=HYPERLINK("http://x")', "s"), (1, "n")],
        [("7", "s"), ("Zürich", "s"), (2, "n")],
    ]
    assert cells[RUST_ENGINE] == cells["xlsxwriter"]  # 1.0 == 1
    # Each file came from its own engine: rust_xlsxwriter spells whole numbers as 1.0.
    assert "<v>1</v>" in xml["xlsxwriter"] and "<v>1.0</v>" in xml[RUST_ENGINE]
