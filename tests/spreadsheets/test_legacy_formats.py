""".xls, .ods (and .xlsx for comparison) as inputs, through a live server.

The workbooks are written by LibreOffice from one typed table (``legacy_workbooks.py`` here,
built once per session): each is accepted with its kind and media type, read with the same
columns, types and values whatever the format (a dry run and a real run), and turned into an
.xlsx by ``excel/convert``; the encrypted ones are ``password_protected``.  A workbook is what
its bytes are, whatever its name; text named .xls is refused saying what it is.  Crafted files
(``crafted_legacy.py``) are refused with their codes, fast, before calamine sees them
(calamine aborts the process, or never returns, on several of them).
"""

from __future__ import annotations

import datetime as dt
import io
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest

from chatflow.failures import StepFailed
from chatflow.settings import Settings
from chatflow.spreadsheets.inspection import check_workbook_container
from chatflow.spreadsheets.zip_parts import GateLimits
from tests.spreadsheets import crafted_legacy as craft
from tests.spreadsheets.legacy_workbooks import DATA_ROWS, EXPECTED, Error, LegacyWorkbooks, build
from tests.support import LiveServer, create_chat, make_settings, run_server, upload

API = "/api/v1"
MEDIA_TYPES = {
    "xls": "application/vnd.ms-excel",
    "ods": "application/vnd.oasis.opendocument.spreadsheet",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
SHEETS = ["Data", "Second", "Notes"]
# Crafted files are refused by the gates in milliseconds; this leaves room for the child.
QUICK_S = 3.0


@pytest.fixture(scope="session")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> LegacyWorkbooks:
    exe = shutil.which("soffice")
    if exe is None:
        if os.geteuid() == 0 and os.environ.get("CI", "").lower() in ("1", "true", "yes", "on"):
            pytest.fail("soffice (LibreOffice) is not installed, and CI must run these tests")
        pytest.skip(
            "soffice (LibreOffice) is not installed: apt-get install libreoffice-calc-nogui"
        )
    return build(tmp_path_factory.mktemp("legacy"), exe)


@pytest.fixture(scope="module")
def legacy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with run_server(make_settings(tmp_path_factory.mktemp("legacy-server") / "data")) as server:
        yield server


@pytest.fixture
def http(legacy_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=legacy_server.url, timeout=60) as client:
        yield client


def _upload(http: httpx.Client, path: Path, name: str | None = None) -> tuple[str, httpx.Response]:
    chat_id = create_chat(http)
    return chat_id, upload(http, chat_id, path, name)


def _execute(http: httpx.Client, chat_id: str, steps: list[dict[str, Any]], **params: str) -> Any:
    response = http.post(
        f"{API}/chat/workflows/{chat_id}/execute", params=params, json={"steps": steps}
    )
    assert response.status_code == 200, response.text
    return response.json()["data"]


def _select_all(sheet: str | None = None) -> dict[str, Any]:
    arguments: dict[str, Any] = {"columns": list(EXPECTED)}
    if sheet is not None:
        arguments = {"columns": ["key", "value"], "sheet": sheet}
    return {"operation": "excel/select-columns", "arguments": arguments}


EXPECTED_ROWS = [list(row) for row in zip(*(v for _, v in EXPECTED.values()), strict=True)]


# --- LibreOffice's files ---------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["xls", "ods", "xlsx"])
def test_each_format_is_accepted_with_its_kind_sheets_and_columns(
    http: httpx.Client, legacy: LegacyWorkbooks, fmt: str
) -> None:
    _, response = _upload(http, legacy.plain[fmt])
    assert response.status_code == 201, response.text
    info = response.json()["data"][0]
    assert (info["kind"], info["media_type"]) == (fmt, MEDIA_TYPES[fmt])
    assert info["sheets"] == SHEETS
    assert (info["columns"], info["row_count"]) == (list(EXPECTED), 4)


@pytest.mark.parametrize("fmt", ["xls", "ods", "xlsx"])
def test_a_dry_run_reads_the_same_typed_rows_from_every_format(
    http: httpx.Client, legacy: LegacyWorkbooks, fmt: str
) -> None:
    chat_id, _ = _upload(http, legacy.plain[fmt])
    (step,) = _execute(http, chat_id, [_select_all()], dry_run="true")["steps"]
    assert step["types"] == [kind for kind, _ in EXPECTED.values()]
    assert step["rows"] == EXPECTED_ROWS
    (second,) = _execute(http, chat_id, [_select_all("Second")], dry_run="true")["steps"]
    assert (second["types"], second["rows"]) == (["text", "integer"], [["a", 10], ["b", 20]])


def _openpyxl_value(value: Any) -> Any:
    """What openpyxl reads back from our xlsx writer for a cell of the source table."""
    if isinstance(value, Error):
        return None
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return dt.datetime(value.year, value.month, value.day)
    return value


@pytest.mark.parametrize("fmt", ["xls", "ods"])
def test_a_run_converts_the_workbook_to_xlsx_with_typed_cells(
    http: httpx.Client, legacy: LegacyWorkbooks, fmt: str
) -> None:
    chat_id, _ = _upload(http, legacy.plain[fmt])
    convert = {"operation": "excel/convert", "arguments": {"format": "xlsx"}}
    run = _execute(http, chat_id, [convert], wait="true")
    assert run["status"] == "completed", run
    (output,) = run["outputs"]
    assert (output["filename"], output["kind"]) == ("legacy_convert.xlsx", "xlsx")
    assert output["media_type"] == MEDIA_TYPES["xlsx"]
    body = http.get(output["download_url"]).content
    sheet = openpyxl.load_workbook(io.BytesIO(body)).active
    assert sheet is not None
    rows = [[cell.value for cell in row] for row in sheet.iter_rows()]
    source = [row for row in DATA_ROWS if any(v is not None for v in row)]
    assert rows == [list(EXPECTED), *([_openpyxl_value(v) for v in row] for row in source)]
    assert [cell.data_type for cell in next(sheet.iter_rows(min_row=2))] == [
        "n", "n", "s", "b", "d", "d", "d", "n", "n", "n", "s",
    ]  # fmt: skip


def test_sql_joins_an_xls_input_with_a_sheet_of_an_ods_file(
    http: httpx.Client, legacy: LegacyWorkbooks
) -> None:
    chat_id, _ = _upload(http, legacy.plain["xls"])
    assert upload(http, chat_id, legacy.plain["ods"]).status_code == 201
    query = (
        "SELECT input.id, input.flag, second.value FROM input "
        "JOIN second ON input.id * 10 = second.value ORDER BY input.id"
    )
    tables = {"second": {"file": "legacy.ods", "sheet": "Second"}}
    sql = {"operation": "excel/sql", "arguments": {"query": query, "tables": tables}}
    body = {"input": "legacy.xls", "steps": [sql]}
    response = http.post(f"{API}/chat/workflows/{chat_id}/execute?dry_run=true", json=body)
    assert response.status_code == 200, response.text
    (step,) = response.json()["data"]["steps"]
    assert step["types"] == ["integer", "boolean", "integer"]
    assert step["rows"] == [[1, True, 10], [2, False, 20]]


@pytest.mark.parametrize("fmt", ["xls", "ods"])
def test_encrypted_workbooks_are_password_protected(
    http: httpx.Client, legacy: LegacyWorkbooks, fmt: str
) -> None:
    chat_id, response = _upload(http, legacy.encrypted[fmt])
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "password_protected"
    assert "password-protected workbooks are not supported" in error["message"].lower()
    assert http.get(f"{API}/chat/workflows/{chat_id}/files").json()["data"] == []


def test_the_gate_counts_every_sheet_of_a_workbook_read_whole(legacy: LegacyWorkbooks) -> None:
    # calamine reads every sheet of an xls or ods when it opens it: the budget is the
    # workbook's, 6 rows x 11 columns + 3 x 2 + 2 x 1 = 74 cells here (xlsx: per sheet).
    for fmt in ("xls", "ods"):
        assert check_workbook_container(legacy.plain[fmt], GateLimits(max_cells=74)) == fmt
        with pytest.raises(StepFailed, match="more than 73 cells") as caught:
            check_workbook_container(legacy.plain[fmt], GateLimits(max_cells=73))
        assert caught.value.code == "too_many_cells"


# --- the bytes decide --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "name"), [("xlsx", "export.xls"), ("ods", "sheet.xlsx"), ("xls", "old.ods")]
)
def test_a_workbook_named_as_another_format_is_read_as_what_it_is(
    http: httpx.Client, legacy: LegacyWorkbooks, fmt: str, name: str
) -> None:
    chat_id, response = _upload(http, legacy.plain[fmt], name)
    assert response.status_code == 201, response.text
    info = response.json()["data"][0]
    assert (info["filename"], info["kind"], info["media_type"]) == (name, fmt, MEDIA_TYPES[fmt])
    (step,) = _execute(http, chat_id, [_select_all()], dry_run="true")["steps"]
    assert step["rows"] == EXPECTED_ROWS
    convert = {"operation": "excel/convert", "arguments": {"format": "xlsx"}}
    run = _execute(http, chat_id, [convert], wait="true")
    assert [o["filename"] for o in run["outputs"]] == [f"{Path(name).stem}_convert.xlsx"]


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("id;name\n1;ann\n2;bob\n", "plain text"),
        ("\ufeff<html><body><table><tr><td>1</td></tr></table></body></html>", "HTML or XML"),
    ],
)
def test_text_named_xls_is_refused_saying_what_it_is(
    http: httpx.Client, tmp_path: Path, text: str, said: str
) -> None:
    chat_id, response = _upload(http, _write(tmp_path / "report.xls", text.encode()))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "not_a_spreadsheet"
    assert "'report.xls'" in error["message"] and said in error["message"]
    assert http.get(f"{API}/chat/workflows/{chat_id}/files").json()["data"] == []


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# --- crafted compound files and OpenDocument zips ----------------------------------------------

CELL = craft.number(0, 0, 1.0)
WORKBOOK = craft.biff_workbook({"S": CELL + craft.number(1, 0, 2.0)})
DEFAULT_WORKBOOK_CELLS = Settings.model_fields["max_workbook_cells"].default
MANY_CELLS = b"".join(craft.number(r, c, 1.0) for r in range(300) for c in range(10))


def _xls(streams: dict[str, bytes] | None = None, **overrides: Any) -> bytes:
    return craft.compound_file(streams or {"Workbook": WORKBOOK}, **overrides)


def _sheet(records: bytes, **options: Any) -> bytes:
    return _xls({"Workbook": craft.biff_workbook({"S": records}, **options)})


# Sector 0 holds the FAT, sector 1 the directory, sectors 2-9 the Workbook stream.
CRAFTED_XLS: dict[str, tuple[bytes, str]] = {
    "directory chain loops": (_xls(fat={1: 1}), "unreadable_file"),
    "stream chain loops": (_xls(fat={5: 2}), "unreadable_file"),
    "stream leaves the file": (_xls(fat={5: 4000}), "unreadable_file"),
    "2**31 FAT sectors claimed": (_xls(header={"fat_count": 2**31 - 1}), "unreadable_file"),
    "DIFAT chain loops": (_xls(header={"difat_start": 0}, fat={127: 0}), "unreadable_file"),
    "DIMENSIONS claims 4e9 rows": (
        _sheet(craft.dimensions(0, 2**32 - 1, 0, 255) + CELL),
        "too_many_cells",
    ),
    "cells in opposite corners": (_sheet(CELL + craft.number(65535, 65535, 2.0)), "too_many_cells"),
    # A sheet of 3,000 cells listed until the sum passes the default limit (3,667 times).
    "one sheet listed past the workbook limit": (
        _sheet(MANY_CELLS, bound_repeat=DEFAULT_WORKBOOK_CELLS // 3000 + 1),
        "too_many_cells",
    ),
    "FILEPASS": (_sheet(CELL, filepass=True), "password_protected"),
    "encrypted xlsx": (
        _xls({"EncryptionInfo": b"\x04\x00\x04\x00", "EncryptedPackage": bytes(64)}),
        "password_protected",
    ),
    "a Word document": (_xls({"WordDocument": bytes(64)}), "not_a_spreadsheet"),
    "VBA storage": (
        _xls({"Workbook": WORKBOOK, "_VBA_PROJECT_CUR": b""}, kinds={"_VBA_PROJECT_CUR": 1}),
        "macros_not_supported",
    ),
}


def test_the_crafted_xls_control_is_read(http: httpx.Client, tmp_path: Path) -> None:
    # The builder writes real workbooks: what each case below changes is what gets it refused.
    _, response = _upload(http, _write(tmp_path / "control.xls", _xls()))
    assert response.status_code == 201, response.text
    info = response.json()["data"][0]
    assert (info["kind"], info["columns"], info["row_count"]) == ("xls", ["1"], 1)


@pytest.mark.parametrize("case", sorted(CRAFTED_XLS))
def test_crafted_xls_is_refused_quickly(http: httpx.Client, tmp_path: Path, case: str) -> None:
    data, code = CRAFTED_XLS[case]
    started = time.monotonic()
    _, response = _upload(http, _write(tmp_path / "crafted.xls", data))
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == code
    assert time.monotonic() - started < QUICK_S


def _sheet_xml(rows: str) -> str:
    return craft.table("T", rows)


DTD_HEAD = craft.CONTENT_HEAD.replace("\n", '\n<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">]>\n', 1)
CRAFTED_ODS: dict[str, tuple[dict[str, Any], str]] = {
    "16384 cells x 6000 rows": (
        {"tables": _sheet_xml(craft.row(craft.float_cell(1, 16384), 6000))},
        "too_many_cells",
    ),
    "10000 rows of 16384 cells": (
        {"tables": _sheet_xml(craft.row(craft.float_cell(1, 16384)) * 10000)},
        "too_many_cells",
    ),
    "a sheet that never ends": (
        {"tables": '<table:table table:name="T">' + craft.row(craft.float_cell(1))},
        "unreadable_file",
    ),
    "a DTD in content.xml": (
        {"tables": _sheet_xml(craft.row(craft.float_cell(1))), "head": DTD_HEAD},
        "xml_dtd_forbidden",
    ),
    "a text document": (
        {"tables": "", "mimetype": "application/vnd.oasis.opendocument.text"},
        "not_a_spreadsheet",
    ),
    "Basic macros": (
        {"tables": _sheet_xml(""), "extra": {"Basic/Standard/Module1.xml": b"<m/>"}},
        "macros_not_supported",
    ),
    "encrypted parts that look like a DTD": (
        {
            "tables": "",
            "content": b"\x93\x11<!ENTITY \xfe\x02" * 500,
            "manifest": craft.MANIFEST.replace("</manifest:manifest>", craft.ENCRYPTED_ENTRY)
            + "</manifest:manifest>",
        },
        "password_protected",
    ),
    "a 64 MB member of zeros": (
        {"tables": _sheet_xml(""), "extra": {"Thumbnails/x.png": bytes(64 << 20)}},
        "zip_bomb",
    ),
}


def test_the_crafted_ods_control_is_read(http: httpx.Client, tmp_path: Path) -> None:
    text = '<table:table-cell office:value-type="string"><text:p>{}</text:p></table:table-cell>'
    rows = craft.row("".join(text.format(name) for name in "nmo"))
    rows += craft.row(craft.float_cell(1.5) + craft.float_cell(2, 2), 2)  # repeats expanded
    chat_id, response = _upload(http, craft.ods(tmp_path / "control.ods", _sheet_xml(rows)))
    assert response.status_code == 201, response.text
    info = response.json()["data"][0]
    assert (info["kind"], info["columns"], info["row_count"]) == ("ods", ["n", "m", "o"], 2)
    select = {"operation": "excel/select-columns", "arguments": {"columns": ["n", "m", "o"]}}
    (step,) = _execute(http, chat_id, [select], dry_run="true")["steps"]
    assert step["types"] == ["float", "integer", "integer"]
    assert step["rows"] == [[1.5, 2, 2], [1.5, 2, 2]]


@pytest.mark.parametrize("case", sorted(CRAFTED_ODS))
def test_crafted_ods_is_refused_quickly(http: httpx.Client, tmp_path: Path, case: str) -> None:
    options, code = CRAFTED_ODS[case]
    path = craft.ods(tmp_path / "crafted.ods", **options)
    started = time.monotonic()
    _, response = _upload(http, path)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == code
    assert time.monotonic() - started < QUICK_S
