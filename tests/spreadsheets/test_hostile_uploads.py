"""Hostile and odd uploads (tests/fixtures/hostile): each is refused with a stable code or
read correctly; the server stays up, its memory bounded, and nothing leaves the data dir."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import openpyxl
import psutil
import pytest

from tests.fixtures_util import HOSTILE
from tests.support import LiveServer, create_chat, make_settings, raw_get, run_server, upload

API = "/api/v1"

REFUSED = {
    "xml_billion_laughs_sharedstrings.xlsx": "xml_dtd_forbidden",
    "xml_billion_laughs_sheet.xlsx": "xml_dtd_forbidden",
    "xxe_etc_passwd_sharedstrings.xlsx": "xml_dtd_forbidden",
    "xxe_etc_passwd_sheet.xlsx": "xml_dtd_forbidden",
    "xxe_ssrf_external_dtd.xlsx": "xml_dtd_forbidden",
    "zipbomb_sheet_1gib.xlsx": "zip_bomb",
    "zipbomb_lying_size_header.xlsx": "zip_bomb",
    "cell_flood_10m_cells.xlsx": "too_many_cells",
    "corners_a1_xfd1048576.xlsx": "too_many_cells",
    "sst_uniquecount_huge.xlsx": "too_many_cells",
    "not_zip_plaintext.xlsx": "not_a_spreadsheet",
    "png_renamed.xlsx": "not_a_spreadsheet",
    "zip_not_ooxml.xlsx": "not_a_spreadsheet",
    "truncated_half.xlsx": "unreadable_file",
    "truncated_sheet_xml.xlsx": "unreadable_file",
    "empty_zero_bytes.xlsx": "empty_file",
    "ole_cfb_header_only.xlsx": "unreadable_file",  # its FAT loops: calamine would not stop
    "encrypted_password.xlsx": "password_protected",
    "macro_enabled.xlsm": "macros_not_supported",
    "csv_empty.csv": "empty_file",
    "csv_malformed.csv": "malformed_csv",
}

ACCEPTED = {
    "control_valid.xlsx": (["id", "name"], 1),
    "dimension_claims_full_grid.xlsx": (["a", "b"], 1),
    "empty_sheet.xlsx": ([], 0),
    "merged_cells.xlsx": (["Region", "Q1", "column_3"], 3),
    "structure_edge_cases.xlsx": (["Region", "Q1", "column_3", "Q2", "column_5"], 4),
    # The header row is blank: the first non-empty row becomes the header (documented policy).
    "header_empty.xlsx": (["1", "x"], 1),
    "header_duplicate.xlsx": (["id", "name", "name_2", "column_4", "column_5", "NAME", "id_2"], 1),
    "csv_duplicate_and_blank_headers.csv": (["id", "name", "name_2", "column_4", "id_2"], 1),
    "csv_header_only.csv": (["id", "name", "amount"], 0),
    "csv_utf8_bom.csv": (["id", "name", "city", "price"], 3),
    "csv_latin1_nobom.csv": (["id", "name", "city", "price"], 3),
    "csv_semicolon_decimal_comma.csv": (["id", "name", "amount"], 2),
    "csv_formula_injection.csv": (["id", "name", "comment", "amount"], 14),
}


@pytest.fixture(scope="module")
def hostile_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    # cell_flood_10m_cells.xlsx is within the default workbook limit (11,000,000 cells, which
    # the inspection can read): half of it proves the gate counts the cells a sheet really holds.
    settings = make_settings(
        tmp_path_factory.mktemp("hostile") / "data", max_workbook_cells=5_000_000
    )
    with run_server(settings) as server:
        yield server


@pytest.fixture
def http(hostile_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hostile_server.url, timeout=60) as client:
        yield client


def test_every_fixture_is_covered() -> None:
    present = {p.name for p in HOSTILE.iterdir() if p.suffix in {".xlsx", ".xlsm", ".csv"}}
    assert present == set(REFUSED) | set(ACCEPTED)


@pytest.mark.parametrize("name", sorted(REFUSED))
@pytest.mark.slow  # zip bombs
def test_hostile_file_is_refused_with_a_stable_code(http: httpx.Client, name: str) -> None:
    chat_id = create_chat(http)
    response = upload(http, chat_id, HOSTILE / name)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == REFUSED[name]
    assert name in error["message"]
    assert "root:" not in response.text
    if name == "encrypted_password.xlsx":
        assert "password-protected workbooks are not supported" in error["message"].lower()
    assert http.get(f"{API}/chat/workflows/{chat_id}/files").json()["data"] == []


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_odd_but_legitimate_file_is_read(http: httpx.Client, name: str) -> None:
    chat_id = create_chat(http)
    response = upload(http, chat_id, HOSTILE / name)
    assert response.status_code == 201, response.text
    info = response.json()["data"][0]
    assert (info["columns"], info["row_count"]) == ACCEPTED[name]


@pytest.mark.slow  # zip bombs
def test_server_memory_stays_bounded_through_all_of_them(http: httpx.Client) -> None:
    process = psutil.Process(os.getpid())  # the server runs in this process's thread
    chat_id = create_chat(http)
    before = process.memory_info().rss
    # The ones that would take gigabytes or abort a parser if anything trusted them.
    for name in sorted(REFUSED):
        if REFUSED[name] in {"zip_bomb", "too_many_cells", "xml_dtd_forbidden"}:
            assert upload(http, chat_id, HOSTILE / name).status_code == 422
    grown = process.memory_info().rss - before
    assert grown < 200 * 1024 * 1024, f"grew by {grown / 2**20:.0f} MB"
    assert http.get(f"{API}/health").json()["data"]["status"] == "ok"


def _run_to_xlsx(http: httpx.Client, chat_id: str, columns: list[str]) -> list[tuple[object, ...]]:
    run = http.post(
        f"{API}/chat/workflows/{chat_id}/execute",
        params={"wait": "true"},
        json={
            "steps": [
                {"operation": "excel/extract-columns-to-file", "arguments": {"columns": columns}}
            ]
        },
    ).json()["data"]
    assert run["status"] == "completed", run
    body = http.get(run["outputs"][0]["download_url"]).content
    sheet = openpyxl.load_workbook(io.BytesIO(body)).active
    assert sheet is not None
    for row in sheet.iter_rows():
        for cell in row:
            assert cell.data_type in {"s", "n"}, (cell.coordinate, cell.value)  # never "f"
    return [tuple(row) for row in sheet.iter_rows(values_only=True)]


def test_formula_text_stays_inert_text_in_outputs(http: httpx.Client) -> None:
    chat_id = create_chat(http)
    upload(http, chat_id, HOSTILE / "csv_formula_injection.csv")
    rows = _run_to_xlsx(http, chat_id, ["id", "name", "comment"])
    # id is a column of whole numbers (number cells); the formula-like text stays text cells.
    assert rows[1] == (1, "alice", "=cmd|' /C calc'!A0")
    assert rows[12] == (12, "=1+2", "name column itself is a formula")
    assert rows[14] == (-14, "peggy", "legit negative id")


def test_latin1_and_bom_csv_decode_to_the_right_text(http: httpx.Client) -> None:
    chat_id = create_chat(http)
    upload(http, chat_id, HOSTILE / "csv_latin1_nobom.csv")
    rows = _run_to_xlsx(http, chat_id, ["name", "city"])
    assert rows[1:] == [("José", "Zürich"), ("Françoise", "Köln"), ("Ægir", "Øresund")]
    upload(http, chat_id, HOSTILE / "csv_utf8_bom.csv")
    assert _run_to_xlsx(http, chat_id, ["id"])[0] == ("id",)


def test_filename_payloads_never_escape_the_data_dir(
    hostile_server: LiveServer, http: httpx.Client, tmp_path: Path
) -> None:
    data_dir = hostile_server.settings.resolved_data_dir
    outside_before = set(Path("/tmp").iterdir())
    chat_id = create_chat(http)
    names = json.loads((HOSTILE / "upload_filename_payloads.json").read_text())
    body = (HOSTILE / "control_valid.xlsx").read_bytes()
    for name in names:
        response = http.post(f"{API}/chat/workflows/{chat_id}/upload", files={"file": (name, body)})
        assert response.status_code < 500, (name, response.text)
        if response.status_code == 201:
            stored = response.json()["data"][0]
            assert "/" not in stored["filename"] and "\\" not in stored["filename"]
            again = http.get(
                f"{API}/chat/workflows/{chat_id}/files/{quote(stored['filename'], safe='')}"
            )
            assert again.status_code == 200 and again.content == body
    for entry in json.loads((HOSTILE / "download_filename_payloads.json").read_text()):
        segment = entry["raw_segment"]
        for url in (
            f"{API}/chat/workflows/{chat_id}/files/{segment}",
            f"{API}/chat/workflows/{segment}/files/control_valid.xlsx",
        ):
            status, text = raw_get(hostile_server.url, url)
            assert status in {400, 404}, (url, status)
            assert "root:" not in text
    for path in data_dir.rglob("*"):
        assert path.resolve().is_relative_to(data_dir)
    assert not {p for p in set(Path("/tmp").iterdir()) - outside_before if "pwned" in p.name}
