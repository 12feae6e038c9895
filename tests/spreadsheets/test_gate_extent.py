"""The gate sizes a sheet by the cells calamine will hold: empty, styled cells (Gnumeric writes
them out to XFD1048576) do not count; a far cell with data, or cells placed by counting, do."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import httpx
import polars as pl
import pytest

from chatflow.failures import StepFailed
from chatflow.spreadsheets.inspection import inspect_file
from chatflow.spreadsheets.writing import write_workbook
from tests.support import create_chat, upload

SHEET = "xl/worksheets/sheet1.xml"


def _workbook(tmp: Path, name: str, extra_rows: str, *, strip_refs: bool = False) -> Path:
    """A two-row workbook whose sheet gets ``extra_rows`` appended to its data."""
    base = tmp / "base.xlsx"
    write_workbook({"Sheet1": pl.DataFrame({"id": [1, 2], "name": ["a", "b"]})}, base)
    out = tmp / name
    with zipfile.ZipFile(base) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dest:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == SHEET:
                text = data.decode()
                if strip_refs:
                    text = re.sub(r'<c r="[A-Z]+[0-9]+"', "<c", text)
                text = re.sub(r'<dimension ref="[^"]*"/>', '<dimension ref="A1:XFD1048576"/>', text)
                data = text.replace("</sheetData>", extra_rows + "</sheetData>").encode()
            dest.writestr(item, data)
    return out


# Gnumeric's habit: every row to the sheet's end, each with styled, empty cells.
EMPTY_TAIL = "".join(
    f'<row r="{r}" spans="1:16384"><c r="XFC{r}" s="0"/><c r="XFD{r}" s="0"/></row>'
    for r in range(1_048_570, 1_048_577)
)


def test_empty_styled_cells_to_the_sheets_end_do_not_count(tmp_path: Path) -> None:
    info = inspect_file(_workbook(tmp_path, "gnumeric.xlsx", EMPTY_TAIL), "xlsx")
    assert info["columns"] == ["id", "name"]
    assert info["row_count"] == 2


def test_a_far_cell_with_data_still_counts(tmp_path: Path) -> None:
    far = '<row r="1048576"><c r="XFD1048576"><v>1</v></c></row>'
    with pytest.raises(StepFailed) as refused:
        inspect_file(_workbook(tmp_path, "far.xlsx", EMPTY_TAIL + far), "xlsx")
    assert refused.value.code == "too_many_cells"


def test_cells_placed_by_counting_count_their_rows(tmp_path: Path) -> None:
    """Without r="...", a cell's place comes from its row: ten cells in the sheet's last row
    make calamine hold rows 1 to 1,048,576 by ten columns."""
    far = '<row r="1048576">' + "<c><v>1</v></c>" * 10 + "</row>"
    path = _workbook(tmp_path, "unplaced.xlsx", far, strip_refs=True)
    with pytest.raises(StepFailed) as refused:
        inspect_file(path, "xlsx")
    assert refused.value.code == "too_many_cells"


def test_such_a_workbook_uploads_and_reads_typed(client: httpx.Client, tmp_path: Path) -> None:
    chat_id = create_chat(client)
    answer = upload(client, chat_id, _workbook(tmp_path, "gnumeric.xlsx", EMPTY_TAIL))
    assert answer.status_code == 201, answer.text
    dry = client.post(
        f"/api/v1/chat/workflows/{chat_id}/execute?dry_run=true",
        json={"steps": [{"operation": "excel/sql", "arguments": {"query": "SELECT * FROM input"}}]},
    )
    assert dry.status_code == 200, dry.text
    (step,) = dry.json()["data"]["steps"]
    assert step["rows"] == [[1, "a"], [2, "b"]]
    assert step["types"] == ["integer", "text"]
