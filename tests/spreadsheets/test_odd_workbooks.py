"""Valid but odd workbooks get in and are read with the right values and types; packages that
break the OPC rules, hide macros or bombs where a reader looks are refused with their code.

The workbooks come from ``odd_workbooks.py`` and ``odd_xlsb.py`` here (the same table in
every layout); everything goes through a live server: upload, a dry run's typed rows, and a
real run in a worker.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from chatflow.failures import StepFailed
from chatflow.spreadsheets.package import resolve
from chatflow.spreadsheets.package_view import readable_source
from tests.spreadsheets.odd_workbooks import (
    COLUMNS,
    TYPES,
    VARIANTS,
    Layout,
    escaping_target,
    package_parts,
    relationships,
    write_package,
)
from tests.spreadsheets.odd_xlsb import (
    CELL_ISST,
    CELL_RK,
    record,
    rk_int,
    row_header,
    sheet_bin,
    write_xlsb,
    xlsb_parts,
)
from tests.support import LiveServer, create_chat, make_settings, run_server, upload

API = "/api/v1"
ROWS = [
    [1, "alpha", True, "2024-01-02", 2.5],
    [2, "beta & <gamma>", False, "2024-03-04", -0.25],
]
CSV = (
    "id,name,ok,when,amount\n1,alpha,true,2024-01-02,2.5\n2,beta & <gamma>,false,2024-03-04,-0.25\n"
)
WORKSHEET = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet"
STYLES = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles"
STRINGS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings"

WORKBOOKS: dict[str, Callable[[Path], Path]] = {
    **VARIANTS,
    "xlsb": write_xlsb,
    "xlsb_date1904": lambda folder: write_xlsb(folder, "table_1904.xlsb", date1904=True),
    # An xlsb saved under an .xlsx name is read as what it is.
    "xlsb_named_xlsx": lambda folder: write_xlsb(folder, "binary.xlsx"),
}


@pytest.fixture(scope="module")
def odd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with run_server(make_settings(tmp_path_factory.mktemp("odd") / "data")) as server:
        yield server


@pytest.fixture
def http(odd_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=odd_server.url, timeout=60) as client:
        yield client


def _dry_run_step(http: httpx.Client, chat_id: str) -> dict[str, object]:
    response = http.post(
        f"{API}/chat/workflows/{chat_id}/execute",
        params={"dry_run": "true"},
        json={"steps": [{"operation": "excel/select-columns", "arguments": {"columns": COLUMNS}}]},
    )
    assert response.status_code == 200, response.text
    (step,) = response.json()["data"]["steps"]
    return dict(step)


@pytest.mark.parametrize("name", sorted(WORKBOOKS))
def test_odd_workbook_is_accepted_and_read_with_its_types(
    http: httpx.Client, tmp_path: Path, name: str
) -> None:
    path = WORKBOOKS[name](tmp_path)
    chat_id = create_chat(http)
    response = upload(http, chat_id, path)
    assert response.status_code == 201, response.text
    info = response.json()["data"][0]
    kind = "xlsb" if name.startswith("xlsb") else "xlsx"
    assert (info["kind"], info["sheets"], info["columns"], info["row_count"]) == (
        kind,
        ["Data"],
        COLUMNS,
        2,
    )
    step = _dry_run_step(http, chat_id)
    assert (step["columns"], step["types"], step["rows"]) == (COLUMNS, TYPES, ROWS)
    # What is stored and served back is the upload itself, byte for byte: odd layouts are
    # re-packaged only in memory, for calamine.
    assert http.get(info["download_url"]).content == path.read_bytes()


@pytest.mark.parametrize(
    "name", ["renamed_parts", "utf16_workbook_parts", "backslash_targets", "xlsb_named_xlsx"]
)
def test_a_run_reads_an_odd_workbook_in_a_worker(
    http: httpx.Client, tmp_path: Path, name: str
) -> None:
    chat_id = create_chat(http)
    assert upload(http, chat_id, WORKBOOKS[name](tmp_path)).status_code == 201
    response = http.post(
        f"{API}/chat/workflows/{chat_id}/execute",
        params={"wait": "true"},
        json={"steps": [{"operation": "excel/convert", "arguments": {"format": "csv"}}]},
    )
    run = response.json()["data"]
    assert run["status"] == "completed", run
    (output,) = run["outputs"]
    assert http.get(output["download_url"]).text.replace("\r\n", "\n") == CSV


# --- refused: each with its code -------------------------------------------------------------


def _xlsx(parts: dict[str, bytes], folder: Path, name: str, **changes: bytes) -> Path:
    return write_package(folder / f"{name}.xlsx", {**parts, **changes})


def _workbook_rels(*links: tuple[str, str, str]) -> bytes:
    return relationships(list(links)).encode()


def sheet_target_missing(folder: Path) -> Path:
    rels = _workbook_rels(
        ("rId1", WORKSHEET, "worksheets/sheet9.xml"), ("rId2", STYLES, "styles.xml")
    )
    return _xlsx(package_parts(Layout()), folder, "missing", **{"xl/_rels/workbook.xml.rels": rels})


def duplicate_entry_names(folder: Path) -> Path:
    parts = package_parts(Layout())
    return _xlsx(
        parts, folder, "dup", **{"XL/Worksheets/Sheet1.xml": parts["xl/worksheets/sheet1.xml"]}
    )


def word_document(folder: Path) -> Path:
    """A package whose main part is a Word document, named .xlsx."""
    parts = package_parts(Layout())
    types = parts["[Content_Types].xml"].replace(
        b"spreadsheetml.sheet.main+xml", b"wordprocessingml.document.main+xml"
    )
    return _xlsx(parts, folder, "letter", **{"[Content_Types].xml": types})


def macros_by_relationship(folder: Path) -> Path:
    """A VBA project under a name no rule of thumb knows, found through its relationship."""
    rels = package_parts(Layout())["xl/_rels/workbook.xml.rels"].replace(
        b"</Relationships>",
        b'<Relationship Id="rId9" Target="code/project.dat" Type='
        b'"http://schemas.microsoft.com/office/2006/relationships/vbaProject"/></Relationships>',
    )
    changes = {"xl/_rels/workbook.xml.rels": rels, "xl/code/project.dat": b"\xd0\xcf\x11\xe0"}
    return _xlsx(package_parts(Layout()), folder, "vba_rel", **changes)


def macro_sheet_by_content_type(folder: Path) -> Path:
    """An Excel 4 macro sheet, known only by its content type."""
    parts = package_parts(Layout())
    types = parts["[Content_Types].xml"].replace(
        b"</Types>",
        b'<Override PartName="/xl/macrosheets/sheet1.xml" '
        b'ContentType="application/vnd.ms-excel.macrosheet+xml"/></Types>',
    )
    changes = {"[Content_Types].xml": types, "xl/macrosheets/sheet1.xml": b"<xm:macrosheet/>"}
    return _xlsx(parts, folder, "xlm", **changes)


def dtd_in_renamed_sheet(folder: Path) -> Path:
    """The XML checks follow the map: a sheet at data/first.xml is checked like any sheet."""
    parts = package_parts(Layout(workbook="book/main.xml", sheet="data/first.xml"))
    sheet = parts["data/first.xml"].replace(
        b"<worksheet", b'<!DOCTYPE x [<!ENTITY a "b">]><worksheet', 1
    )
    return _xlsx(parts, folder, "dtd", **{"data/first.xml": sheet})


def utf16_without_bom(folder: Path) -> Path:
    parts = package_parts(Layout())
    sheet = parts["xl/worksheets/sheet1.xml"].decode().encode("utf-16-le")
    return _xlsx(parts, folder, "no_bom", **{"xl/worksheets/sheet1.xml": sheet})


def bomb_in_unread_part(folder: Path) -> Path:
    """Parts no reader parses are still inflated against the byte budget."""
    return _xlsx(
        package_parts(Layout()), folder, "bomb", **{"docProps/blob.bin": b"\0" * 300_000_000}
    )


def _xlsb_with(folder: Path, name: str, rows: list[bytes], last_row: int, last_col: int) -> Path:
    return write_package(folder / f"{name}.xlsb", xlsb_parts(sheet_bin(rows, last_row, last_col)))


def xlsb_corner_cells(folder: Path) -> Path:
    cell = record(CELL_RK, struct.pack("<II", 0, 0) + rk_int(1))
    far = record(CELL_RK, struct.pack("<II", 16383, 0) + rk_int(2))
    return _xlsb_with(folder, "corners", [row_header(0) + cell, row_header(1048575) + far], 0, 0)


def xlsb_absurd_record(folder: Path) -> Path:
    """A record claiming 200 MB (calamine allocates what a record claims before reading it)."""
    huge = bytes([0x02, 0x80, 0x80, 0x80, 0x64]) + b"\0" * 12
    return _xlsb_with(folder, "absurd", [row_header(0) + huge], 0, 0)


def xlsb_missing_string(folder: Path) -> Path:
    """A cell naming shared string 999 of 7 (calamine panics on it)."""
    cell = record(CELL_ISST, struct.pack("<III", 0, 0, 999))
    return _xlsb_with(folder, "isst", [row_header(0) + cell], 0, 0)


def xlsb_short_cell(folder: Path) -> Path:
    """A number cell of 4 bytes, where calamine reads 12."""
    return _xlsb_with(folder, "short", [row_header(0) + record(CELL_RK, b"\0" * 4)], 0, 0)


REFUSED: dict[str, tuple[Callable[[Path], Path], str]] = {
    "escaping_target": (escaping_target, "invalid_package"),
    "sheet_target_missing": (sheet_target_missing, "invalid_package"),
    "duplicate_entry_names": (duplicate_entry_names, "invalid_package"),
    "word_document": (word_document, "not_a_spreadsheet"),
    "macros_by_relationship": (macros_by_relationship, "macros_not_supported"),
    "macro_sheet_by_content_type": (macro_sheet_by_content_type, "macros_not_supported"),
    "dtd_in_renamed_sheet": (dtd_in_renamed_sheet, "xml_dtd_forbidden"),
    "utf16_without_bom": (utf16_without_bom, "unreadable_file"),
    "bomb_in_unread_part": (bomb_in_unread_part, "zip_bomb"),
    "xlsb_corner_cells": (xlsb_corner_cells, "too_many_cells"),
    "xlsb_absurd_record": (xlsb_absurd_record, "unreadable_file"),
    "xlsb_missing_string": (xlsb_missing_string, "unreadable_file"),
    "xlsb_short_cell": (xlsb_short_cell, "unreadable_file"),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_broken_or_hostile_package_is_refused_with_its_code(
    http: httpx.Client, tmp_path: Path, name: str
) -> None:
    build, code = REFUSED[name]
    path = build(tmp_path)
    chat_id = create_chat(http)
    response = upload(http, chat_id, path)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == code, response.text
    assert http.get(f"{API}/chat/workflows/{chat_id}/files").json()["data"] == []


def test_a_dtd_in_a_part_no_reader_parses_is_only_size_budgeted(
    http: httpx.Client, tmp_path: Path
) -> None:
    custom = b'<?xml version="1.0"?><!DOCTYPE item [<!ENTITY a "b">]><item>&a;</item>'
    path = _xlsx(package_parts(Layout()), tmp_path, "custom", **{"customXml/item1.xml": custom})
    chat_id = create_chat(http)
    response = upload(http, chat_id, path)
    assert response.status_code == 201, response.text
    assert _dry_run_step(http, chat_id)["rows"] == ROWS


# --- in process: target resolution and when calamine gets a copy ---------------------------


@pytest.mark.parametrize(
    ("source", "target", "part"),
    [
        ("", "xl/workbook.xml", "xl/workbook.xml"),
        ("", "/workbook.xml", "workbook.xml"),
        ("xl/workbook.xml", "worksheets/sheet1.xml", "xl/worksheets/sheet1.xml"),
        ("xl/workbook.xml", "/xl/worksheets/sheet1.xml", "xl/worksheets/sheet1.xml"),
        ("xl/workbook.xml", "worksheets\\sheet1.xml", "xl/worksheets/sheet1.xml"),
        ("xl/workbook.xml", "../data/./s.xml", "data/s.xml"),
        ("xl/workbook.xml", "sheet%201.xml#frag", "xl/sheet%201.xml"),
        ("xl/workbook.xml", "https://example.com/x.xml", None),
        ("xl/workbook.xml", "C:\\temp\\x.xml", None),
    ],
)
def test_targets_resolve_inside_the_package(source: str, target: str, part: str | None) -> None:
    assert resolve(source, target) == part


@pytest.mark.parametrize("target", ["../../x.xml", "/../x.xml", "..\\..\\x.xml", "//host/x.xml"])
def test_a_target_climbing_out_of_the_package_is_refused(target: str) -> None:
    with pytest.raises(StepFailed) as caught:
        resolve("xl/workbook.xml", target)
    assert caught.value.code == "invalid_package"


@pytest.mark.parametrize(
    ("name", "as_is"),
    [
        ("absolute_targets", True),
        ("strict_namespaces", True),
        ("workbook_at_root", True),
        ("xlsb", True),
        ("renamed_parts", False),
        ("backslash_entry_names", False),
        ("utf16_workbook_parts", False),
        ("xlsb_named_xlsx", False),
    ],
)
def test_calamine_reads_the_file_itself_unless_it_would_miss_parts(
    tmp_path: Path, name: str, as_is: bool
) -> None:
    path = WORKBOOKS[name](tmp_path)
    assert (readable_source(path) == path) is as_is
