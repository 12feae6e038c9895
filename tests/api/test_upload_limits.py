"""Upload limits per format: a file is refused for its cells only past its format's limit, and
every refusal names the limit it hit and the CHATFLOW_* setting that raises it."""

from __future__ import annotations

import shutil
import zipfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest

from chatflow.failures import StepFailed
from chatflow.services.upload_limits import Limit, limit_hit
from chatflow.settings import CSV_BYTES_PER_CELL, WORKBOOK_BYTES_PER_CELL, Settings
from chatflow.spreadsheets.inspection import check_workbook_container
from chatflow.spreadsheets.zip_parts import GateLimits
from tests.support import LiveServer, create_chat, make_settings, run_server, upload, write_xlsx

API = "/api/v1"
MIB = 1024 * 1024
# A 1,000,000 x 10 table, as the issue asks the defaults to accept, and the limits of the test
# server: the default workbook limit scaled down 1,000 times, so a 1,000 x 10 xlsx stands for it.
ROWS, WIDTH = 1_000_000, 10
SCALE = 1000
CSV_CELLS = 1000


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data = tmp_path_factory.mktemp("limits") / "data"
    defaults = make_settings(data)
    settings = make_settings(
        data,
        max_csv_cells=CSV_CELLS,
        max_workbook_cells=defaults.max_workbook_cells // SCALE,
        max_uncompressed_mb=1,
    )
    with run_server(settings) as server:
        yield server


@pytest.fixture
def http(small: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=small.url, timeout=60) as client:
        yield client


def _csv(path: Path, rows: int) -> Path:
    lines = [",".join(f"c{i}" for i in range(WIDTH))]
    lines += [",".join(str(r * WIDTH + i) for i in range(WIDTH)) for r in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _xlsx(path: Path, rows: int) -> Path:
    header: list[Any] = [f"c{i}" for i in range(WIDTH)]
    return write_xlsx(path, [header, *([r * WIDTH + i for i in range(WIDTH)] for r in range(rows))])


def _refused(response: httpx.Response, code: str) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code
    return error


def _stored(http: httpx.Client, chat_id: str) -> list[Any]:
    return list(http.get(f"{API}/chat/workflows/{chat_id}/files").json()["data"])


def test_a_csv_at_its_limit_is_accepted(http: httpx.Client, tmp_path: Path) -> None:
    chat_id = create_chat(http)
    response = upload(http, chat_id, _csv(tmp_path / "at.csv", CSV_CELLS // WIDTH))
    assert response.status_code == 201, response.text
    info = response.json()["data"][0]
    assert (info["kind"], info["row_count"]) == ("csv", 100)
    assert info["columns"] == [f"c{i}" for i in range(WIDTH)]


def test_a_csv_over_its_limit_is_refused_naming_the_setting(
    http: httpx.Client, tmp_path: Path
) -> None:
    chat_id = create_chat(http)
    response = upload(http, chat_id, _csv(tmp_path / "over.csv", CSV_CELLS // WIDTH + 1))
    error = _refused(response, "too_many_cells")
    assert error["message"] == (
        "file 'over.csv' was refused: The file has 1,010 cells; at most 1,000 are supported. "
        "The limit is 1,000 cells in a csv file; the setting CHATFLOW_MAX_CSV_CELLS raises it."
    )
    assert error["details"] == {
        "filename": "over.csv",
        "setting": "CHATFLOW_MAX_CSV_CELLS",
        "limit": 1000,
    }
    assert _stored(http, chat_id) == []


def test_an_xlsx_of_a_thousandth_of_1m_x_10_passes_a_thousandth_of_the_default(
    http: httpx.Client, tmp_path: Path
) -> None:
    chat_id = create_chat(http)
    response = upload(http, chat_id, _xlsx(tmp_path / "scaled.xlsx", ROWS // SCALE))
    assert response.status_code == 201, response.text
    info = response.json()["data"][0]
    assert (info["kind"], info["row_count"]) == ("xlsx", 1000)
    assert info["columns"] == [f"c{i}" for i in range(WIDTH)]


def test_an_xlsx_over_its_limit_is_refused_naming_the_setting(
    http: httpx.Client, tmp_path: Path
) -> None:
    chat_id = create_chat(http)
    response = upload(http, chat_id, _xlsx(tmp_path / "over.xlsx", 1100))  # 11,010 cells
    error = _refused(response, "too_many_cells")
    assert error["message"] == (
        "file 'over.xlsx' was refused: Part 'xl/worksheets/sheet1.xml' holds more than 11,000 "
        "cells or strings. The limit is 11,000 cells in a workbook; the setting "
        "CHATFLOW_MAX_WORKBOOK_CELLS raises it."
    )
    assert error["details"] == {
        "filename": "over.xlsx",
        "setting": "CHATFLOW_MAX_WORKBOOK_CELLS",
        "limit": 11_000,
    }
    assert _stored(http, chat_id) == []


def test_a_workbook_named_csv_gets_the_workbook_limit(http: httpx.Client, tmp_path: Path) -> None:
    # 10,010 cells: ten times the csv limit, within the workbook's; its bytes decide.
    chat_id = create_chat(http)
    response = upload(http, chat_id, _xlsx(tmp_path / "book.xlsx", 1000), name="book.csv")
    assert response.status_code == 201, response.text
    info = response.json()["data"][0]
    assert (info["kind"], info["row_count"]) == ("xlsx", 1000)


def test_a_workbook_past_the_inflated_bytes_limit_names_that_setting(
    http: httpx.Client, tmp_path: Path
) -> None:
    path = shutil.copy(_xlsx(tmp_path / "small.xlsx", 3), tmp_path / "padded.xlsx")
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/media/image1.bin", b"\x00" * (2 * MIB))  # 2 MB, no reader parses it
    error = _refused(upload(http, create_chat(http), Path(path)), "zip_bomb")
    assert error["message"] == (
        "file 'padded.xlsx' was refused: The workbook expands to more than 1 MB. "
        "The limit is 1 MB inflated; the setting CHATFLOW_MAX_UNCOMPRESSED_MB raises it."
    )
    assert error["details"] == {
        "filename": "padded.xlsx",
        "setting": "CHATFLOW_MAX_UNCOMPRESSED_MB",
        "limit": 1,
    }


@pytest.mark.parametrize(
    ("code", "details", "variable", "sentence"),
    [
        (
            "file_too_complex",
            None,
            "CHATFLOW_INSPECT_MEMORY_MB",
            "The limit is 2,048 MB of memory to inspect; the setting "
            "CHATFLOW_INSPECT_MEMORY_MB raises it.",
        ),
        (
            "inspection_timeout",
            None,
            "CHATFLOW_INSPECT_TIMEOUT_S",
            "The limit is 60 s to inspect a file; the setting CHATFLOW_INSPECT_TIMEOUT_S "
            "raises it.",
        ),
        ("zip_bomb", None, None, None),  # a ratio or a member count: fixed, no setting
        ("not_a_spreadsheet", None, None, None),
    ],
)
def test_refusals_name_the_setting_behind_them(
    tmp_path: Path, code: str, details: Any, variable: str | None, sentence: str | None
) -> None:
    settings = make_settings(tmp_path)
    cells = Limit("max_csv_cells", settings.max_csv_cells, "cells in a csv file")
    limit = limit_hit(settings, code, details, cells)
    assert (limit.variable if limit else None) == variable
    assert (limit.sentence() if limit else None) == sentence


# --- the defaults ---------------------------------------------------------------------------


def test_the_defaults_admit_1m_x_10_and_fit_their_memory_caps(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    # The xlsx gate counts every cell, header included; the csv check counts data rows.
    assert settings.max_workbook_cells >= (ROWS + 1) * WIDTH
    assert settings.max_csv_cells >= ROWS * WIDTH
    # Documented margins: a workbook's cells read in at most 2/3 of the inspection's cap, and
    # any table in at most half a step's, leaving the step room to work.
    workbook_bytes = settings.max_workbook_cells * WORKBOOK_BYTES_PER_CELL
    assert workbook_bytes <= settings.inspect_memory_mb * MIB * 2 / 3
    assert workbook_bytes <= settings.step_memory_mb * MIB / 2
    assert settings.max_csv_cells * CSV_BYTES_PER_CELL <= settings.step_memory_mb * MIB / 2
    assert settings.limit_conflicts() == []


def test_limits_that_outgrow_their_memory_cap_are_named(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, max_workbook_cells=30_000_000, step_memory_mb=1024)
    assert settings.limit_conflicts() == [
        "CHATFLOW_MAX_WORKBOOK_CELLS=30000000 needs about 3662 MB to read a workbook "
        "(128 B a cell), more than CHATFLOW_INSPECT_MEMORY_MB=2048",
        "CHATFLOW_MAX_WORKBOOK_CELLS=30000000 needs about 3662 MB to read a workbook "
        "(128 B a cell), more than CHATFLOW_STEP_MEMORY_MB=1024",
        "CHATFLOW_MAX_CSV_CELLS=40000000 needs about 1907 MB to read a csv (50 B a cell), "
        "more than CHATFLOW_STEP_MEMORY_MB=1024",
    ]


def test_the_old_max_cells_variable_sets_the_workbook_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHATFLOW_MAX_CELLS", "1234")
    settings = make_settings(tmp_path)
    assert (settings.max_workbook_cells, settings.max_csv_cells) == (1234, 40_000_000)
    assert Settings.model_fields["max_csv_cells"].description


@pytest.mark.slow  # writes and scans a 190 MB sheet part
def test_the_default_refuses_a_small_xlsx_holding_more_cells(tmp_path: Path) -> None:
    limit = make_settings(tmp_path).max_workbook_cells
    path = _flood(_xlsx(tmp_path / "seed.xlsx", 1), tmp_path / "flood.xlsx", limit // WIDTH + 10)
    assert path.stat().st_size < 2 * MIB
    with pytest.raises(StepFailed) as refused:
        check_workbook_container(path, GateLimits(max_cells=limit))
    assert refused.value.code == "too_many_cells"


def _flood(seed: Path, path: Path, rows: int) -> Path:
    """``seed`` with its sheet replaced by ``rows`` rows of ten number cells."""
    sheet_name = "xl/worksheets/sheet1.xml"
    block = "".join(
        "<row>" + "".join(f"<c><v>{(r + i) % 7}</v></c>" for i in range(WIDTH)) + "</row>"
        for r in range(7)
    ).encode()
    with zipfile.ZipFile(seed) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for item in src.infolist():
            if item.filename != sheet_name:
                out.writestr(item, src.read(item))
        with out.open(sheet_name, "w") as sheet:
            sheet.write(b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/')
            sheet.write(b'2006/main"><sheetData>')
            for _ in range(rows // 7 + 1):
                sheet.write(block)
            sheet.write(b"</sheetData></worksheet>")
    return path


def _million() -> pl.DataFrame:
    """1,000,000 x 10: ints, floats, dates and short text."""
    i = pl.int_range(0, ROWS, eager=True)
    return pl.select(
        id=i,
        qty=(i * 7919) % 1000,
        price=(i % 997).cast(pl.Float64) * 1.25 + 0.01,
        name=pl.format("customer {}", i % 50_000),
        city=pl.lit("Paris"),
        day=pl.lit(date(2020, 1, 1)) + pl.duration(days=pl.lit(i % 2000)),
        ratio=i.cast(pl.Float64) / 3.0,
        code=pl.format("C{}-{}", i % 97, i % 13),
        amount=(i * 31) % 100_000,
        note=pl.format("note {}", i % 1000),
    )


def _upload_with_defaults(tmp_path: Path, path: Path) -> dict[str, Any]:
    with (
        run_server(make_settings(tmp_path / "data")) as server,
        httpx.Client(base_url=server.url, timeout=180) as http,
    ):
        response = upload(http, create_chat(http), path)
    assert response.status_code == 201, response.text
    info: dict[str, Any] = response.json()["data"][0]
    assert info["row_count"] == ROWS
    assert info["columns"] == list(_million().columns)
    return info


@pytest.mark.slow  # an 86 MB csv, inspected by a server with default limits
def test_the_defaults_accept_a_1m_x_10_csv(tmp_path: Path) -> None:
    _million().write_csv(tmp_path / "million.csv")
    assert _upload_with_defaults(tmp_path, tmp_path / "million.csv")["kind"] == "csv"


@pytest.mark.slow  # 15 s to write a 62 MB xlsx, 25 s to inspect it
def test_the_defaults_accept_a_1m_x_10_xlsx(tmp_path: Path) -> None:
    rustpy_xlsxwriter = pytest.importorskip("rustpy_xlsxwriter")
    rustpy_xlsxwriter.write_worksheets([("Sheet1", _million())], str(tmp_path / "million.xlsx"))
    assert _upload_with_defaults(tmp_path, tmp_path / "million.xlsx")["kind"] == "xlsx"
