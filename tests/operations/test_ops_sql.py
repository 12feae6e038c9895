"""excel/sql: read-only queries over the current table and the chat's files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from pydantic import ValidationError

from chatflow.failures import StepFailed
from chatflow.operations import load_all
from chatflow.operations.sql import file_tables, statement_problem, table_name
from chatflow.spreadsheets.reading import read_table
from tests.step_harness import StepHarness

REGISTRY = load_all()

ORDERS = pl.DataFrame(
    {
        "region": ["north", "south", "north", "east"],
        "sku": ["A1", "B2", "B2", "A1"],
        "qty": [2, 1, 3, 5],
        "zip": ["01234", "12345", "01234", "00501"],
    }
)
PRICES = pl.DataFrame({"sku": ["A1", "B2"], "price": ["1.5", "10"]})


def harness(tmp_path: Path, **others: pl.DataFrame) -> StepHarness:
    return StepHarness(tmp_path, ORDERS, input_name="orders.xlsx", others=others)


def run(h: StepHarness, arguments: dict[str, Any]) -> Any:
    return h.run("excel/sql", arguments)


def test_query_the_input_with_its_types(tmp_path: Path) -> None:
    out = run(
        harness(tmp_path),
        {
            "query": "SELECT region, SUM(qty) AS units, MIN(zip) AS first_zip FROM input "
            "GROUP BY region ORDER BY units DESC, region"
        },
    )
    assert out.table is not None
    assert out.table.rows() == [("east", 5, "00501"), ("north", 5, "01234"), ("south", 1, "12345")]
    assert out.table.schema == {"region": pl.String, "units": pl.Int64, "first_zip": pl.String}
    assert out.result == {
        "rows_out": 3,
        "columns": ["region", "units", "first_zip"],
        "tables_used": [{"table": "input", "file": "orders.xlsx", "rows": 4}],
    }
    assert not out.wrote_table and out.files == []


def test_join_a_chat_file_by_its_derived_name(tmp_path: Path) -> None:
    h = harness(tmp_path, **{"Price List 2024.csv": PRICES, "unused.csv": PRICES})
    # A file the query does not mention is never read: break it to prove it.
    h.files.chat_files["unused.csv"].path.write_bytes(b"\x00\x01 not a csv")
    out = run(
        h,
        {
            "query": "SELECT o.region, o.qty * p.price AS total FROM input o "
            "JOIN price_list_2024 p ON o.sku = p.sku ORDER BY total DESC -- biggest first",
            "output": "totals.csv",
        },
    )
    assert out.table is not None
    assert out.table.rows() == [("north", 30.0), ("south", 10.0), ("east", 7.5), ("north", 3.0)]
    assert [t["table"] for t in out.result["tables_used"]] == ["input", "price_list_2024"]
    (written,) = out.files
    assert written.name == "totals.csv" and out.wrote_table
    assert out.table.schema == {"region": pl.String, "total": pl.Float64}
    assert written.path.read_text().splitlines() == [
        "region,total",
        "north,30",
        "south,10",
        "east,7.5",
        "north,3",
    ]
    assert read_table(written.path, kind="csv").rows() == out.table.rows()


def test_text_only_and_explicit_table_names(tmp_path: Path) -> None:
    h = harness(tmp_path, **{"prices.xlsx": PRICES})
    out = run(
        h,
        {
            "query": "SELECT sku, price FROM p WHERE price > '2'",
            "tables": {"p": {"file": "prices.xlsx", "sheet": "Sheet1"}},
            "infer_types": False,
        },
    )
    assert out.table is not None
    assert out.table.schema == {"sku": pl.String, "price": pl.String}
    assert out.table.rows() == []  # "10" > "2" is false for text
    assert out.result["tables_used"] == [{"table": "p", "file": "prices.xlsx", "rows": 2}]


def test_sql_sees_numbers_booleans_dates_and_text(tmp_path: Path) -> None:
    table = pl.DataFrame(
        {
            "amount": [120.0, -80.0, 3.5, None],
            "paid": [True, False, True, None],
            "day": [dt.date(2024, 1, 31), dt.date(2024, 2, 1), None, dt.date(2023, 12, 1)],
            "code": ["01234", "120", "3.5", None],
        }
    )
    h = StepHarness(tmp_path, table)
    totals = run(
        h,
        {
            "query": "SELECT SUM(amount) AS total, COUNT(*) AS n, MAX(day) AS last FROM input "
            "WHERE paid",
            "infer_types": False,  # deprecated: changes nothing
        },
    )
    assert totals.table is not None
    assert totals.table.rows() == [(123.5, 2, dt.date(2024, 1, 31))]
    assert totals.table["total"].dtype == pl.Float64
    assert totals.table["n"].dtype.is_integer()
    assert totals.table["last"].dtype == pl.Date
    h.files.current = None
    rows = run(
        h,
        {
            "query": "SELECT code, amount FROM input WHERE day >= '2024-01-01' AND code = '01234'",
        },
    )
    assert rows.table is not None
    assert rows.table.schema == {"code": pl.String, "amount": pl.Float64}
    assert rows.table.rows() == [("01234", 120.0)]
    h.files.current = None
    with pytest.raises(StepFailed) as caught:  # numbers held as text are text
        run(h, {"query": "SELECT SUM(code) FROM input"})
    assert caught.value.code == "invalid_sql"
    h.files.current = None
    cast = run(h, {"query": "SELECT SUM(CAST(code AS DOUBLE)) AS s FROM input"})
    assert cast.table is not None and cast.table.rows() == [(1357.5,)]


def test_table_names() -> None:
    assert table_name("Sales 2024.xlsx") == "sales_2024"
    assert table_name("2024.csv") == "t_2024"
    assert table_name("--.csv") == "file"
    assert file_tables(["input.csv", "b.csv", "B.xlsx", "Input.xlsx"]) == {
        "b": "B.xlsx",
        "input_2": "Input.xlsx",
        "b_2": "b.csv",
        "input_3": "input.csv",
    }


@pytest.mark.parametrize(
    "query",
    [
        "DROP TABLE x",
        "SELECT 1; DROP TABLE input",
        "CREATE TABLE t AS SELECT * FROM input",
        "TRUNCATE input",
        "SHOW TABLES",
        "-- only a comment",
    ],
)
def test_only_select_runs(tmp_path: Path, query: str) -> None:
    assert statement_problem(query) is not None
    with pytest.raises(StepFailed) as caught:
        run(harness(tmp_path), {"query": query})
    assert caught.value.code == "sql_forbidden"


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "select * from READ_PARQUET ('/x')",
        "SELECT * FROM \"read_csv\"('/etc/passwd')",
        "SELECT * FROM read_csv/* hidden */('/etc/passwd')",
        "SELECT COUNT(*) FROM read_csv('/etc/passwd')",
    ],
)
def test_file_functions_are_refused_where_the_query_runs(tmp_path: Path, query: str) -> None:
    """No text filter sees these: the sealed process and the plan check refuse them."""
    assert statement_problem(query) is None
    with pytest.raises(StepFailed) as caught:
        run(harness(tmp_path), {"query": query})
    assert caught.value.code == "sql_forbidden"
    assert "root:" not in caught.value.message


@pytest.mark.parametrize(
    "query",
    ["WITH t AS (SELECT 1) DELETE FROM input", "SELECT * FROM input WHERE update = 1"],
)
def test_statements_polars_cannot_parse_are_invalid(tmp_path: Path, query: str) -> None:
    with pytest.raises(StepFailed) as caught:
        run(harness(tmp_path), {"query": query})
    assert caught.value.code == "invalid_sql"


@pytest.mark.parametrize(
    "query",
    [
        "SELECT 'DROP TABLE x; SELECT 1' AS s",
        "  (SELECT * FROM input)",
        'WITH t AS (SELECT "update" FROM input) SELECT * FROM t;',
        "/* notes */ select count(*) from input -- DELETE",
        "SELECT read_count FROM input",
    ],
)
def test_harmless_text_is_not_refused(query: str) -> None:
    assert statement_problem(query) is None


def test_invalid_sql(tmp_path: Path) -> None:
    with pytest.raises(StepFailed) as caught:
        run(harness(tmp_path / "a"), {"query": "SELECT nope FROM input"})
    assert caught.value.code == "invalid_sql"
    assert 'unable to find column "nope"' in caught.value.message
    with pytest.raises(StepFailed) as caught:
        run(harness(tmp_path / "b"), {"query": "SELECT * FROM missing_table"})
    assert caught.value.code == "invalid_sql"
    with pytest.raises(StepFailed) as caught:
        run(harness(tmp_path / "c"), {"query": "SELEC * FROM input"})
    assert caught.value.code == "sql_forbidden"
    with pytest.raises(StepFailed) as caught:
        run(harness(tmp_path / "d"), {"query": "SELECT * FROM input WHERE"})
    assert caught.value.code == "invalid_sql"


def test_sql_arguments() -> None:
    op = REGISTRY.get("excel/sql")
    assert op is not None
    for bad in [
        {},
        {"query": ""},
        {"query": "SELECT 1", "tables": {"input": {"file": "a.csv"}}},
        {"query": "SELECT 1", "tables": {"1x": {"file": "a.csv"}}},
        {"query": "SELECT 1", "tables": {"x": {"name": "a.csv"}}},
        {"query": "SELECT 1", "output": "a\\b.csv"},
        {"query": "SELECT 1", "dialect": "duckdb"},
    ]:
        with pytest.raises(ValidationError):
            op.args_model.model_validate(bad)
