"""What a file is comes from its bytes: a workbook under a .csv name is read as a workbook, and
a step's parquet output is a table later steps can read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import polars as pl

from chatflow.spreadsheets.writing import write_workbook
from tests.support import create_chat, upload

API = "/api/v1"
TABLE = pl.DataFrame({"code": ["007", "010"], "qty": [3, 4], "price": [1.5, 2.25]})


def _dry_sql(client: httpx.Client, chat_id: str, query: str) -> dict[str, Any]:
    answer = client.post(
        f"{API}/chat/workflows/{chat_id}/execute?dry_run=true",
        json={"steps": [{"operation": "excel/sql", "arguments": {"query": query}}]},
    )
    assert answer.status_code == 200, answer.text
    step: dict[str, Any] = answer.json()["data"]["steps"][0]
    return step


def test_a_workbook_named_csv_is_read_as_the_workbook_it_is(
    client: httpx.Client, tmp_path: Path
) -> None:
    path = tmp_path / "export.xlsx"
    write_workbook({"Sheet1": TABLE}, path)
    chat_id = create_chat(client)
    answer = upload(client, chat_id, path, name="export.csv")
    assert answer.status_code == 201, answer.text
    (stored,) = answer.json()["data"]
    assert stored["kind"] == "xlsx"
    step = _dry_sql(client, chat_id, "SELECT * FROM input")
    assert step["rows"] == [["007", 3, 1.5], ["010", 4, 2.25]]
    assert step["types"] == ["text", "integer", "float"]


def test_a_parquet_output_is_a_table_for_later_steps(client: httpx.Client, tmp_path: Path) -> None:
    path = tmp_path / "orders.xlsx"
    write_workbook({"Sheet1": TABLE}, path)
    chat_id = create_chat(client)
    assert upload(client, chat_id, path).status_code == 201
    run = client.post(
        f"{API}/chat/workflows/{chat_id}/execute",
        params={"wait": "true"},
        json={
            "steps": [
                {
                    "operation": "excel/sql",
                    "arguments": {"query": "SELECT code, qty * price AS total FROM input"},
                },
                {
                    "operation": "excel/convert",
                    "arguments": {"format": "parquet", "output": "totals.parquet"},
                },
            ]
        },
    ).json()["data"]
    assert run["status"] == "completed", run.get("error")
    step = _dry_sql(client, chat_id, "SELECT code, total FROM totals ORDER BY code")
    assert step["rows"] == [["007", 4.5], ["010", 9.0]]
    assert step["types"] == ["text", "float"]
