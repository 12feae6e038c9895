"""Every cell keeps its type through the service: upload, run, download (a live server)."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatflow.spreadsheets.writing import write_csv
from tests.fixtures_util import make_xlsx, write_table_xlsx
from tests.support import LiveServer, create_chat, upload

API = "/api/v1"

ISSUE_ROWS: list[list[Any]] = [
    ["name", "amount", "flag", "postal_code", "day"],
    ["ann", 120, True, "01234", dt.date(2024, 1, 2)],
    ["bob", -80, False, "98765", dt.date(2024, 1, 3)],
    ["cy", 3.5, True, "00501", None],
]


def _issue_workbook(path: Path) -> Path:
    return make_xlsx(path, ISSUE_ROWS)


def _run(client: httpx.Client, chat_id: str, steps: list[dict[str, Any]], **extra: Any) -> Any:
    response = client.post(
        f"{API}/chat/workflows/{chat_id}/execute",
        params={"wait": "true"},
        json={"steps": steps, **extra},
    )
    assert response.status_code == 200, response.text
    run = response.json()["data"]
    assert run["status"] == "completed", run
    return run


def _cells(content: bytes) -> list[list[tuple[Any, str]]]:
    """Every cell below the header as (value, openpyxl data type)."""
    sheet = openpyxl.load_workbook(io.BytesIO(content)).active
    assert sheet is not None
    return [[(c.value, c.data_type) for c in row] for row in sheet.iter_rows(min_row=2)]


def _download(client: httpx.Client, chat_id: str, name: str) -> bytes:
    response = client.get(f"{API}/chat/workflows/{chat_id}/files/{name}")
    assert response.status_code == 200, response.text
    return response.content


NUMBER_CELLS = [
    [("ann", "s"), (120, "n"), (True, "b"), ("01234", "s"), (dt.datetime(2024, 1, 2), "d")],
    [("bob", "s"), (-80, "n"), (False, "b"), ("98765", "s"), (dt.datetime(2024, 1, 3), "d")],
    [("cy", "s"), (3.5, "n"), (True, "b"), ("00501", "s"), (None, "n")],
]


def test_the_issue_workflows_keep_numbers_booleans_text_and_dates(
    client: httpx.Client, tmp_path: Path
) -> None:
    chat_id = create_chat(client)
    assert upload(client, chat_id, _issue_workbook(tmp_path / "data.xlsx")).status_code == 201
    workflows: dict[str, tuple[dict[str, Any], list[list[tuple[Any, str]]]]] = {
        "sort": (
            {"operation": "excel/sort", "arguments": {"by": [{"column": "amount"}]}},
            [NUMBER_CELLS[1], NUMBER_CELLS[2], NUMBER_CELLS[0]],
        ),
        "select": (
            {"operation": "excel/select-columns", "arguments": {"columns": ISSUE_ROWS[0]}},
            NUMBER_CELLS,
        ),
        "filter": (
            {
                "operation": "excel/filter-rows",
                "arguments": {"conditions": [{"column": "amount", "op": "gt", "value": 0}]},
            },
            [NUMBER_CELLS[0], NUMBER_CELLS[2]],
        ),
        "dedupe": (
            {"operation": "excel/remove-duplicates", "arguments": {"columns": ["flag"]}},
            NUMBER_CELLS[:2],
        ),
        "convert": (
            {"operation": "excel/convert", "arguments": {"format": "xlsx"}},
            NUMBER_CELLS,
        ),
    }
    for label, (step, expected) in workflows.items():
        run = _run(client, chat_id, [step], input="data.xlsx")
        (output,) = run["outputs"]
        assert _cells(_download(client, chat_id, output["filename"])) == expected, label


def test_a_csv_converted_to_xlsx_has_number_and_date_cells(
    client: httpx.Client, tmp_path: Path
) -> None:
    chat_id = create_chat(client)
    source = tmp_path / "people.csv"
    source.write_text("id,amount,zip,day,flag\n7,120,01234,2024-01-02,true\n8,-2.25,98765,,false\n")
    assert upload(client, chat_id, source).status_code == 201
    run = _run(client, chat_id, [{"operation": "excel/convert", "arguments": {"format": "xlsx"}}])
    (output,) = run["outputs"]
    assert _cells(_download(client, chat_id, output["filename"])) == [
        [(7, "n"), (120, "n"), ("01234", "s"), (dt.datetime(2024, 1, 2), "d"), ("true", "s")],
        [(8, "n"), (-2.25, "n"), ("98765", "s"), (None, "n"), ("false", "s")],
    ]


def test_dry_run_rows_are_typed_json_with_their_types(client: httpx.Client, tmp_path: Path) -> None:
    chat_id = create_chat(client)
    upload(client, chat_id, _issue_workbook(tmp_path / "data.xlsx"))
    response = client.post(
        f"{API}/chat/workflows/{chat_id}/execute",
        params={"dry_run": "true"},
        json={
            "steps": [
                {"operation": "excel/select-columns", "arguments": {"columns": ISSUE_ROWS[0]}}
            ]
        },
    )
    assert response.status_code == 200, response.text
    (step,) = response.json()["data"]["steps"]
    assert step["columns"] == ISSUE_ROWS[0]
    assert step["types"] == ["text", "float", "boolean", "text", "date"]
    assert step["rows"] == [
        ["ann", 120, True, "01234", "2024-01-02"],
        ["bob", -80, False, "98765", "2024-01-03"],
        ["cy", 3.5, True, "00501", None],
    ]


# --- round trips, generated ----------------------------------------------------------------

_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12
).filter(lambda s: s.strip() != "")
_KINDS: dict[str, tuple[pl.DataType, st.SearchStrategy[Any]]] = {
    "integer": (pl.Int64(), st.integers(-(2**53) + 1, 2**53 - 1)),
    "float": (
        pl.Float64(),
        st.floats(allow_nan=False, allow_infinity=False, width=64).filter(
            lambda f: not f.is_integer() and abs(f) < 1e300 and (f == 0 or abs(f) > 1e-300)
        ),
    ),
    "boolean": (pl.Boolean(), st.booleans()),
    "date": (pl.Date(), st.dates(dt.date(1900, 3, 1), dt.date(9999, 12, 31))),
    "datetime": (
        pl.Datetime("us"),
        st.datetimes(dt.datetime(1900, 3, 1), dt.datetime(9999, 12, 31)).map(
            lambda d: d.replace(microsecond=0, second=d.second or 1)  # a time of day, whole s
        ),
    ),
    "text": (pl.String(), _TEXT),
}


# Each example is an upload and a run on a live server: a few are enough to find a type lost.
ROUND_TRIPS = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@st.composite
def typed_tables(draw: st.DrawFn) -> pl.DataFrame:
    kinds = draw(st.lists(st.sampled_from(sorted(_KINDS)), min_size=1, max_size=6))
    height = draw(st.integers(1, 8))
    columns = {}
    for i, kind in enumerate(kinds):
        dtype, values = _KINDS[kind]
        # Wholly empty rows are dropped on reading (documented), so the first column is full;
        # an all-empty column would read back as empty text, so every column has a value.
        cell = values if i == 0 else st.none() | values
        cells = draw(st.lists(cell, min_size=height, max_size=height))
        if all(v is None for v in cells):
            cells[0] = draw(values)
        columns[f"{kind}_{i}"] = pl.Series(cells, dtype=dtype)
    return pl.DataFrame(columns)


@ROUND_TRIPS
@pytest.mark.slow  # generated tables
@given(table=typed_tables())
def test_xlsx_round_trip_keeps_every_cell(
    server: LiveServer, client: httpx.Client, tmp_path: Path, table: pl.DataFrame
) -> None:
    chat_id = create_chat(client)
    source = tmp_path / "typed.xlsx"
    write_table_xlsx(table, source)
    assert upload(client, chat_id, source).status_code == 201
    step = {"operation": "excel/select-columns", "arguments": {"columns": table.columns}}
    (output,) = _run(client, chat_id, [step])["outputs"]
    assert _cells(_download(client, chat_id, output["filename"])) == _cells(source.read_bytes())


@ROUND_TRIPS
@pytest.mark.slow  # generated tables
@given(table=typed_tables())
def test_csv_round_trip_keeps_every_value_the_rule_keeps(
    server: LiveServer, client: httpx.Client, tmp_path: Path, table: pl.DataFrame
) -> None:
    chat_id = create_chat(client)
    source = tmp_path / "typed.csv"
    write_csv(table, source)
    assert upload(client, chat_id, source).status_code == 201
    step = {
        "operation": "excel/select-columns",
        "arguments": {"columns": table.columns, "output": "out.csv"},
    }
    _run(client, chat_id, [step])
    back = pl.read_csv(io.BytesIO(_download(client, chat_id, "out.csv")), infer_schema=False)
    again = pl.read_csv(source, infer_schema=False)
    assert back.equals(again)  # the same text, so the same values, whatever the rule made of them
