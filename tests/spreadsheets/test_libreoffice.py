"""A real spreadsheet program reads our xlsx files: LibreOffice opens and re-saves them intact.

Each case is written with both engines (``write_workbook(..., engine=...)``), converted by
``soffice --headless --convert-to xlsx`` (a private profile per test session, a time limit,
the whole process group killed if it overruns) and read back with openpyxl.  What is checked is
what a user opening the file would see: the same sheets, rows and values, numbers as numbers,
dates as date cells shown as dates (date-times with their time, times as times), booleans as
booleans, text as text (never a formula, however it starts) and empty cells empty; and what
the policy makes text (nan and inf, durations, dates before 1900, decimals past 15 digits,
integers past 2**53) as that text.

LibreOffice's own habits, asserted precisely rather than hidden:
- it re-saves a boolean cell as the formula ``TRUE()``/``FALSE()`` with the boolean as its
  cached value (Calc has no boolean cell type; a boolean it reads from any xlsx becomes that);
- it drops empty strings, so xlsxwriter's ``""`` cell comes back empty, like the Rust engine's;
- it writes the date formats escaped (``yyyy\\-mm\\-dd``), which show the same;
- openpyxl gives every date cell's value as a datetime, midnight for a date.

LibreOffice repairs a malformed sheet silently in headless mode (no message at all); it only
prints ``Error: source file could not be loaded`` for a file it cannot open.  So its messages
are checked, but it is the cell-by-cell comparison that would catch a damaged file.

``soffice`` missing: the tests are skipped with the reason, except as root on CI (``CI`` set
to true), where they fail: ``.ci/run`` installs libreoffice-calc-nogui there.

The whole module is marked ``slow`` (``make test-fast`` leaves it out).  Its slowest test
writes a sheet at Excel's row
limit, 1,048,575 rows + header: 9-35 s per engine on a 2-CPU machine, by load (writing 0.9 s
with rustpy-xlsxwriter, 5-7 s with xlsxwriter; LibreOffice 8-15 s and ~800 MB; reading back
~1 s).  openpyxl checks that sheet's size and first rows only: reading all its rows would add
~14 s per engine, so fastexcel checks every value and type.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import fastexcel
import openpyxl
import polars as pl
import pytest

from chatflow.spreadsheets.writing import EXCEL_MAX_ROWS, XLSX_ENGINES, write_workbook
from chatflow.spreadsheets.writing_cells import MAX_EXACT_INT, sheet_cells
from tests.support import group_alive, kill_group

pytestmark = pytest.mark.slow  # LibreOffice re-saves every case

CONVERT_TIMEOUT_S = 180.0
# The row-limit sheet takes LibreOffice ~8 s and ~800 MB here.
BIG_CONVERT_TIMEOUT_S = 300.0
EXCEL_MAX_TEXT = 32_767
# How LibreOffice re-saves a boolean cell (with the boolean as the cached value).
LO_BOOLEAN_FORMULAS = {"=TRUE()": True, "=FALSE()": False}
# Lines that mean LibreOffice could not load or save a file (or complains about one).
_TROUBLE = re.compile(
    r"error|repair|corrupt|damage|invalid|could not|cannot|unable|fail|abort", re.IGNORECASE
)
# Harmless on a machine without Java; printed on every start.
_BENIGN = re.compile(r"^Warning: failed to launch javaldx - java may not function correctly$")

Sheets = dict[str, pl.DataFrame]


# --- the cases ----------------------------------------------------------------------------


def _numbers() -> Sheets:
    return {
        "Numbers": pl.DataFrame(
            {
                "int": [0, 1, -1, 42, -2_147_483_649, 2**53 - 1, None],
                "float": [3.5, -1.5, 0.1, 1e20, -0.25, None, 0.0],
                "uint": pl.Series([1, None, 3, 4, 5, 6, 2**64 - 1], dtype=pl.UInt64),
            }
        )
    }


def _dates() -> Sheets:
    return {
        "Dates": pl.DataFrame(
            {
                "date": [
                    dt.date(2024, 2, 29),
                    dt.date(1900, 3, 1),
                    dt.date(1970, 1, 1),
                    None,
                    dt.date(9999, 12, 31),
                ],
                "datetime": [
                    dt.datetime(2024, 1, 2, 3, 4, 5),
                    dt.datetime(1999, 12, 31, 23, 59, 59),
                    None,
                    dt.datetime(2024, 1, 1),
                    dt.datetime(2038, 1, 19, 3, 14, 7),
                ],
            }
        )
    }


def _booleans() -> Sheets:
    return {"Booleans": pl.DataFrame({"flag": [True, False, None, True], "n": [1, 2, 3, 4]})}


def _formula_like_text() -> Sheets:
    return {
        "Text": pl.DataFrame(
            {
                "text": [
                    "=1+2",
                    '=HYPERLINK("x")',
                    "+49 30",
                    "-5%",
                    "@SUM(A1)",
                    "01234",
                    "1e5",
                    "TRUE",
                    None,
                    "2024-01-02",
                    " ",
                ]
            }
        )
    }


def _long_text() -> Sheets:
    # Excel's limit: 32,767 characters (UTF-16 units: the emoji counts 2).
    return {
        "Long": pl.DataFrame(
            {
                "text": [
                    "x" * EXCEL_MAX_TEXT,
                    ("0123456789" * 3277)[:EXCEL_MAX_TEXT],
                    "😀" * 16_383 + "x",
                ]
            }
        )
    }


def _unicode() -> Sheets:
    return {
        "Unicode": pl.DataFrame(
            {
                "text": [
                    "héllo 😀",
                    "👨‍👩‍👧 👍🏽 🇩🇪",  # ZWJ sequence, skin tone, flag
                    "שלום עולם",  # Hebrew (RTL)
                    "مرحبا بالعالم",  # Arabic (RTL)
                    "漢字かなカナ 한국어",  # CJK
                    "e\u0301 a\u0308 n\u0303",  # combining marks, decomposed
                    "\u200bzero\u200dwidth",
                    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛",  # outside the BMP
                ],
                "ключ": ["a", "b", "c", "d", "e", "f", "g", "h"],  # a non-ASCII header
            }
        )
    }


def _empty_cells() -> Sheets:
    return {
        "Empty": pl.DataFrame(
            {
                "int": [1, None, None, 4],
                "float": [None, 2.5, None, None],
                "date": [None, dt.date(2024, 1, 1), None, None],
                "datetime": [dt.datetime(2024, 1, 1, 12), None, None, None],
                "bool": [None, None, None, True],
                "text": ["a", "", None, None],  # "" is an empty cell once LibreOffice saves it
                "nothing": pl.Series([None] * 4, dtype=pl.String),
            }
        )
    }


def _narrow_integers() -> Sheets:
    """Integer columns narrower than 64 bits, as polars makes them (str.len_chars() is
    UInt32, dt.year() Int32)."""
    dtypes = [pl.Int8, pl.Int16, pl.Int32, pl.UInt8, pl.UInt16, pl.UInt32]
    return {
        "Narrow": pl.DataFrame(
            [pl.Series(str(dtype), [1, None, 100], dtype=dtype) for dtype in dtypes]
        )
    }


def _null_column() -> Sheets:
    """A column of dtype Null (all None, no type), as pl.lit(None) makes."""
    return {"Null": pl.DataFrame({"a": [1, 2], "nothing": [None, None]})}


def _three_sheets() -> Sheets:
    """What excel/split-file writes: one sheet per group, named after it."""
    table = pl.DataFrame(
        {
            "city": ["Zürich", "São Paulo", "東京", "Zürich", "東京", "Zürich"],
            "id": ["001", "002", "003", "004", "005", "006"],
            "amount": [1.5, -2.0, 3.25, 1e20, None, 0.1],
            "when": [dt.date(2024, 1, d) for d in range(1, 7)],
            "ok": [True, False, True, None, False, True],
        }
    )
    return {
        city: table.filter(pl.col("city") == city)
        for city in table.get_column("city").unique(maintain_order=True).to_list()
    }


def _times_and_specials() -> Sheets:
    """Values the policy turns into something else: times (day fractions shown as times),
    durations, nan/inf and dates before 1900 (text), time-zoned date-times (wall clock),
    decimals (numbers, or text past 15 digits).  Every column but ``time`` mixes numbers with
    text, so the Rust engine writes this sheet row by row, not through Arrow."""
    utc = dt.UTC
    return {
        "Specials": pl.DataFrame(
            {
                "time": [dt.time(0, 0), dt.time(12, 30, 15), None, dt.time(23, 59, 59)],
                "duration": [dt.timedelta(hours=1), None, dt.timedelta(days=2), None],
                "float": [math.nan, math.inf, -math.inf, 2.5],
                "date": [dt.date(1899, 12, 31), dt.date(1900, 1, 1), None, dt.date(2024, 1, 2)],
                "datetime": [
                    dt.datetime(1800, 6, 1, 12, 0),
                    dt.datetime(2024, 3, 1, 9, 30, 0),
                    None,
                    dt.datetime(2024, 12, 31, 23, 59, 59),
                ],
                "zoned": pl.Series(
                    [dt.datetime(2024, 6, 1, 12, 0, tzinfo=utc), None] * 2,
                    dtype=pl.Datetime("us", "Europe/Berlin"),
                ),
                "decimal": pl.Series(
                    [Decimal("1.25"), Decimal("-3"), None, Decimal("12345678901234567.8")],
                    dtype=pl.Decimal(20, 2),
                ),
                "category": pl.Series(["a", "b", None, "a"], dtype=pl.Categorical),
            }
        )
    }


CASES: dict[str, Sheets] = {
    "numbers": _numbers(),
    "dates": _dates(),
    "booleans": _booleans(),
    "formula_like_text": _formula_like_text(),
    "long_text": _long_text(),
    "unicode": _unicode(),
    "empty_cells": _empty_cells(),
    "three_sheets": _three_sheets(),
    "narrow_integers": _narrow_integers(),
    "null_column": _null_column(),
    "times_and_specials": _times_and_specials(),
}
# --- running LibreOffice ------------------------------------------------------------------


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes", "on")


@dataclass
class Soffice:
    """``soffice`` with a private profile; ``convert`` re-saves files as xlsx."""

    exe: str
    profile: Path

    def convert(self, files: Sequence[Path], outdir: Path, timeout_s: float) -> str:
        """Convert ``files`` into ``outdir``; return what soffice printed (stdout + stderr).

        It runs in its own process group, which is killed whole on timeout; no process of
        that group may outlive the call."""
        outdir.mkdir(parents=True, exist_ok=True)
        command = [
            self.exe,
            "--headless",
            "--norestore",
            f"-env:UserInstallation={self.profile.as_uri()}",
            "--convert-to",
            "xlsx",
            "--outdir",
            str(outdir),
            *map(str, files),
        ]
        proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            output, _ = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            kill_group(proc.pid)
            output, _ = proc.communicate()
            group_alive(proc.pid, wait_s=5.0)
            pytest.fail(f"soffice took more than {timeout_s:.0f} s; it printed:\n{output}")
        except BaseException:  # interrupted: leave nothing running
            kill_group(proc.pid)
            raise
        if group_alive(proc.pid, wait_s=5.0):
            kill_group(proc.pid)
            pytest.fail(f"soffice left processes behind (now killed); it printed:\n{output}")
        assert proc.returncode == 0, f"soffice exited with {proc.returncode}:\n{output}"
        return output


@pytest.fixture(scope="session")
def soffice(tmp_path_factory: pytest.TempPathFactory) -> Soffice:
    exe = shutil.which("soffice")
    if exe is None:
        if os.geteuid() == 0 and _ci():
            pytest.fail(
                "soffice (LibreOffice) is not installed, and CI must run these tests: "
                "install libreoffice-calc-nogui (.ci/run does so when it runs as root)"
            )
        pytest.skip(
            "soffice (LibreOffice) is not installed: apt-get install libreoffice-calc-nogui"
        )
    return Soffice(exe, tmp_path_factory.mktemp("soffice-profile"))


@dataclass
class Converted:
    original: Path
    resaved: Path
    output: str  # everything soffice printed for the batch
    error: Exception | None = None  # what writing the case raised, if it did


@pytest.fixture(scope="session")
def converted(
    soffice: Soffice, tmp_path_factory: pytest.TempPathFactory
) -> dict[tuple[str, str], Converted]:
    """Every case written by every engine, then all re-saved in one soffice run (one start-up
    instead of one per file: ~3 s rather than ~18 s).  A case that fails to write is left out
    of the run and fails its own test only."""
    source = tmp_path_factory.mktemp("written")
    outdir = tmp_path_factory.mktemp("resaved")
    files: dict[tuple[str, str], Path] = {}
    errors: dict[tuple[str, str], Exception] = {}
    for engine in XLSX_ENGINES:
        for case, sheets in CASES.items():
            path = source / f"{case}-{engine}.xlsx"
            try:
                write_workbook(sheets, path, engine=engine)  # type: ignore[arg-type]
            except Exception as exc:
                errors[case, engine] = exc
            files[case, engine] = path
    written = [path for key, path in files.items() if key not in errors]
    output = soffice.convert(written, outdir, CONVERT_TIMEOUT_S)
    return {
        key: Converted(path, outdir / path.name, output, errors.get(key))
        for key, path in files.items()
    }


def _assert_converted_cleanly(original: Path, resaved: Path, output: str) -> None:
    """soffice said it converted ``original`` into ``resaved``, and complained about nothing."""
    trouble = [
        line
        for line in output.splitlines()
        if line.strip() and not _BENIGN.match(line) and _TROUBLE.search(line)
    ]
    assert trouble == [], f"soffice printed:\n{output}"
    assert f"convert {original} -> {resaved} using filter" in output, output
    assert resaved.is_file(), output


# --- what a user sees ---------------------------------------------------------------------

Seen = tuple[str | None, Any]  # (kind, value)


def _expected(value: Any) -> Seen:
    """The cell a user should find for a value we wrote."""
    if value is None or value == "":
        return (None, None)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int) and abs(value) >= MAX_EXACT_INT:
        return ("text", str(value))  # the policy: a double could not hold it exactly
    if isinstance(value, float) and not math.isfinite(value):
        return ("text", str(value))  # nan, inf, -inf
    if isinstance(value, Decimal):
        # A double holds 15 digits exactly; a longer decimal stays exact as text.
        if len(value.as_tuple().digits) > 15:
            return ("text", str(value))
        value = float(value)
    if isinstance(value, int | float):
        # LibreOffice reads every digit (its .ods export shows 9007199254740991), but its
        # xlsx export writes numbers with 15 significant digits, as Excel shows them.
        return ("number", float(f"{value:.15g}"))
    if isinstance(value, dt.date) and value.year < 1900:
        return ("text", value.isoformat())  # Excel has no dates before 1900
    if isinstance(value, dt.datetime):
        return ("datetime", value.replace(tzinfo=None))  # wall-clock time
    if isinstance(value, dt.date):
        return ("date", value)
    if isinstance(value, dt.time):
        return ("time", value)
    if isinstance(value, dt.timedelta):
        return ("text", str(value))  # "1:00:00", "2 days, 0:00:00"
    assert isinstance(value, str)
    return ("text", value)


def _expected_grid(df: pl.DataFrame) -> list[list[Seen]]:
    header: list[Seen] = [("text", name) for name in df.columns]
    return [header] + [[_expected(v) for v in row] for row in df.iter_rows()]


def _seen(cell: Any, cached: Any) -> Seen:
    """What a cell shows: ``cell`` from the file as saved, ``cached`` from a data-only load."""
    kind, value = cell.data_type, cell.value
    if kind == "f":
        if value in LO_BOOLEAN_FORMULAS and cached.data_type == "b":
            assert cached.value is LO_BOOLEAN_FORMULAS[value]
            return ("bool", cached.value)
        return ("formula", value)
    if value is None:
        return (None, None)
    if kind == "b":
        return ("bool", value)
    if kind == "s":
        return ("text", value)
    fmt = cell.number_format.replace("\\", "")
    if cell.is_date:
        if fmt == "yyyy-mm-dd" and value.time() == dt.time(0):
            return ("date", value.date())
        if fmt == "yyyy-mm-dd hh:mm:ss":
            return ("datetime", value)
        if fmt == "hh:mm:ss" and isinstance(value, dt.time):
            return ("time", value)
        return (f"date shown as {fmt!r}", value)
    if kind == "n" and isinstance(value, int | float):
        return ("number", float(value)) if fmt == "General" else (f"number as {fmt!r}", value)
    return (f"type {kind!r}", value)


def _seen_grid(path: Path) -> dict[str, list[list[Seen]]]:
    book = openpyxl.load_workbook(path)
    cached = openpyxl.load_workbook(path, data_only=True)
    grids = {}
    for ws in book.worksheets:
        values = cached[ws.title]
        grids[ws.title] = [
            [_seen(cell, values.cell(cell.row, cell.column)) for cell in row]
            for row in ws.iter_rows()
        ]
    return grids


def _formulas(path: Path) -> list[tuple[str, str, Any]]:
    """Every formula cell other than LibreOffice's way of saving a boolean."""
    book = openpyxl.load_workbook(path)
    return [
        (ws.title, cell.coordinate, cell.value)
        for ws in book.worksheets
        for row in ws.iter_rows()
        for cell in row
        if cell.data_type == "f" and cell.value not in LO_BOOLEAN_FORMULAS
    ]


def _trim(grid: list[list[Seen]]) -> list[list[Seen]]:
    """Without the empty cells that end a row (openpyxl pads rows to the sheet's width) and
    the empty rows that end the sheet (no file has them: nothing marks where they end)."""
    out = []
    for row in grid:
        cells = list(row)
        while cells and cells[-1] == (None, None):
            cells.pop()
        out.append(cells)
    while out and not out[-1]:
        out.pop()
    return out


# --- the tests ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "engine"),
    [pytest.param(case, engine) for case in CASES for engine in XLSX_ENGINES],
)
def test_libreoffice_reads_and_resaves_the_same_cells(
    case: str, engine: str, converted: dict[tuple[str, str], Converted]
) -> None:
    done = converted[case, engine]
    if done.error is not None:
        raise done.error
    _assert_converted_cleanly(done.original, done.resaved, done.output)
    sheets = CASES[case]
    seen = _seen_grid(done.resaved)
    assert list(seen) == list(sheets)  # the same sheets, in order
    for name, df in sheets.items():
        got, expected = _trim(seen[name]), _trim(_expected_grid(df))
        assert len(got) == len(expected), f"{name}: rows lost or added"
        assert got == expected, name
    assert _formulas(done.resaved) == []


def test_the_cases_take_both_paths_of_the_rust_engine() -> None:
    """Arrow for sheets of one kind of cell per column, rows for a sheet that mixes kinds."""
    mixed = {
        case: any(column.mixed() for df in sheets.values() for column in sheet_cells(df))
        for case, sheets in CASES.items()
    }
    assert mixed["times_and_specials"]
    assert not mixed["dates"] and not mixed["unicode"]


# The default engine only: LibreOffice takes ~50 s over a million rows, and xlsxwriter's
# fallback writes the same cells its small round trips above already prove.
@pytest.mark.parametrize("engine", ["rustpy-xlsxwriter"])
def test_a_sheet_at_the_excel_row_limit_survives_libreoffice_slow(
    engine: str, soffice: Soffice, tmp_path: Path
) -> None:
    rows = EXCEL_MAX_ROWS - 1  # 1,048,575 data rows + the header
    original = tmp_path / f"limit-{engine}.xlsx"
    write_workbook(
        {"Rows": pl.DataFrame({"n": pl.int_range(1, rows + 1, eager=True)})},
        original,
        engine=engine,  # type: ignore[arg-type]
    )
    outdir = tmp_path / "resaved"
    output = soffice.convert([original], outdir, BIG_CONVERT_TIMEOUT_S)
    resaved = outdir / original.name
    _assert_converted_cleanly(original, resaved, output)
    # openpyxl: the sheet, its size and the first rows' cells.  It would need ~14 s per
    # engine to read all 1M rows back (read-only), so fastexcel (~1 s) checks every value.
    book = openpyxl.load_workbook(resaved, read_only=True)
    try:
        assert book.sheetnames == ["Rows"]
        sheet = book["Rows"]
        assert sheet.calculate_dimension() == f"A1:A{rows + 1}", "rows lost"
        first = [(c.value, c.data_type) for (c,) in sheet.iter_rows(max_row=4)]
        assert first == [("n", "s"), (1, "n"), (2, "n"), (3, "n")]
    finally:
        book.close()
    # Every cell typed (strict: a text cell among the numbers would raise), every value there.
    column = (
        fastexcel.read_excel(resaved)
        .load_sheet("Rows", schema_sample_rows=None, dtype_coercion="strict")
        .to_polars()
        .get_column("n")
    )
    assert column.dtype == pl.Float64
    assert column.len() == rows, "rows lost"
    assert column.equals(pl.int_range(1, rows + 1, eager=True).cast(pl.Float64).alias("n"))
