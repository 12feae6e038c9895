"""Steps that can grow a table estimate their output first and refuse past CHATFLOW_MAX_ROWS.

Step-level tests pin each estimate exactly: at the estimate the step runs (and makes that
many rows or cells), one below it fails with ``too_many_rows`` carrying the estimate. Live
tests show the issue's constant-key join (and each other growing step) refused in a dry run
and a real run, with the server healthy afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest

from chatflow.failures import StepFailed
from chatflow.operations.common import join_pairs
from chatflow.operations.limits import Limits
from chatflow.operations.registry import StepOutput
from tests.step_harness import StepHarness
from tests.support import create_chat, make_settings, run_server, upload

API = "/api/v1"

ORDERS = pl.DataFrame(
    {
        "order": ["o1", "o2", "o3", "o4", "o5"],
        "sku": ["A1", "B2", "A1", "Z9", None],
    }
)
PRICES = pl.DataFrame(
    {
        "code": ["B2", "A1", "B2", "C3", None],
        "price": [20, 10, 21, 30, 99],
    }
)


def _harness(
    tmp_path: Path, table: pl.DataFrame, max_rows: int, others: dict[str, pl.DataFrame] | None
) -> StepHarness:
    harness = StepHarness(tmp_path, table, others=others)
    harness.files.limits = Limits(max_rows=max_rows)
    return harness


def _exact(
    tmp_path: Path,
    table: pl.DataFrame,
    operation: str,
    arguments: dict[str, Any],
    estimate: int,
    others: dict[str, pl.DataFrame] | None = None,
) -> tuple[StepOutput, StepFailed]:
    """Run at max_rows=estimate (must pass), then at estimate - 1 (must be refused)."""
    passed = _harness(tmp_path / "at", table, estimate, others).run(operation, arguments)
    refused = _harness(tmp_path / "below", table, estimate - 1, others)
    with pytest.raises(StepFailed) as caught:
        refused.run(operation, arguments)
    failure = caught.value
    assert failure.code == "too_many_rows"
    assert failure.details["estimate"] == estimate
    assert failure.details["max_rows"] == estimate - 1
    assert failure.details["setting"] == "CHATFLOW_MAX_ROWS"
    assert f"{estimate:,}" in failure.message and "CHATFLOW_MAX_ROWS" in failure.message
    return passed, failure


@pytest.mark.parametrize(
    ("how", "duplicates", "rows"),
    [
        # A1: 2 left x 1 right, B2: 1 x 2 -> 4 pairs; Z9 and the empty key match nothing;
        # C3 and the empty right key are right-only rows.
        ("inner", "keep_all", 4),
        ("left", "keep_all", 6),
        ("outer", "keep_all", 8),
        ("inner", "first", 3),
        ("left", "first", 5),
        ("outer", "first", 7),
    ],
)
def test_lookup_join_estimates_its_rows_exactly(
    tmp_path: Path, how: str, duplicates: str, rows: int
) -> None:
    arguments = {
        "right_file": "prices.csv",
        "left_on": "sku",
        "right_on": "code",
        "how": how,
        "right_duplicates": duplicates,
    }
    out, failure = _exact(
        tmp_path, ORDERS, "excel/lookup-join", arguments, rows, {"prices.csv": PRICES}
    )
    assert out.table is not None and out.table.height == rows
    assert failure.details["unit"] == "rows"
    assert failure.message.startswith(f"Joining with 'prices.csv' would make {rows} rows;")


def test_a_constant_key_join_is_refused_before_it_is_built(tmp_path: Path) -> None:
    left = pl.DataFrame({"key": ["k"] * 20_000, "n": range(20_000)})
    right = pl.DataFrame({"key": ["k"] * 20_000, "m": range(20_000)})
    harness = StepHarness(tmp_path, left, others={"right.csv": right})  # default limits
    start = time.perf_counter()
    with pytest.raises(StepFailed) as caught:
        harness.run("excel/lookup-join", {"right_file": "right.csv", "left_on": "key"})
    elapsed = time.perf_counter() - start
    # 400,000,000 rows would take many GB and far longer than the reads to build.
    assert caught.value.code == "too_many_rows"
    assert caught.value.details["estimate"] == 400_000_000
    assert caught.value.details["max_rows"] == Limits().max_rows
    assert elapsed < 5, elapsed


def test_pivot_estimates_row_keys_times_new_columns(tmp_path: Path) -> None:
    df = pl.DataFrame(
        {
            "k": ["a", "a", "b", "c", None],
            "col": ["x", "y", "x", "z", "x"],
            "v": [1, 2, 3, 4, 5],
        }
    )
    arguments = {"index": ["k"], "columns": "col", "values": "v"}
    out, failure = _exact(tmp_path, df, "excel/pivot", arguments, 12)  # 4 keys x 3 values
    assert out.table is not None and out.table.shape == (4, 4)
    assert failure.details["unit"] == "cells"
    assert failure.message.startswith("Pivoting into 4 rows × 3 columns would make 12 cells;")


def test_unpivot_estimates_rows_times_value_columns(tmp_path: Path) -> None:
    df = pl.DataFrame({"id": [1, 2, 3, 4, 5], "a": [1, None, 3, 4, 5], "b": [1] * 5, "c": [2] * 5})
    arguments = {"id_columns": ["id"], "drop_empty": True}
    out, failure = _exact(tmp_path, df, "excel/unpivot", arguments, 15)
    assert out.table is not None and out.table.height == 14  # counted before dropping empties
    assert failure.message.startswith("Unpivoting 5 rows × 3 value columns would make 15 rows;")


def test_unpivot_runs_over_its_own_output(tmp_path: Path) -> None:
    harness = StepHarness(tmp_path, pl.DataFrame({"id": [1, 2], "a": [3, 4]}))
    first = harness.run("excel/unpivot", {"id_columns": ["id"]})
    assert first.table is not None
    harness.files.current = first.table
    again = harness.run("excel/unpivot", {"id_columns": ["id"]})  # 'variable' and 'value' again
    assert again.table is not None
    assert again.table.rows() == [
        (1, "variable", "a"),
        (1, "value", "3"),
        (2, "variable", "a"),
        (2, "value", "4"),
    ]
    named = harness.run("excel/unpivot", {"id_columns": [], "variable_name": "id"})
    assert named.table is not None and named.table.columns == ["id", "value"]


def test_split_column_estimates_rows_times_parts(tmp_path: Path) -> None:
    df = pl.DataFrame({"s": ["a,b", "a,b,c", "a", "c"]})
    out, failure = _exact(tmp_path, df, "excel/split-column", {"column": "s", "delimiter": ","}, 12)
    assert out.table is not None and out.table.columns == ["s_1", "s_2", "s_3"]
    assert failure.details["unit"] == "cells"


def test_append_files_estimates_rows_and_empty_cells(tmp_path: Path) -> None:
    base = pl.DataFrame({"a": [1, 2, 3, 4, 5], "b": ["x"] * 5})
    same = {"f.csv": base.head(3), "g.csv": base.head(4)}
    arguments = {"files": ["f.csv", "g.csv"]}
    out, failure = _exact(tmp_path / "rows", base, "excel/append-files", arguments, 12, same)
    assert out.table is not None and out.table.height == 12
    assert failure.message.startswith("Appending 3 tables would make 12 rows;")

    # 8 rows, but 5 x 1 + 3 x 2 = 11 cells are empty only because a table lacks the column.
    other = {"c.csv": pl.DataFrame({"c": [1, 2, 3]})}
    arguments = {"files": ["c.csv"]}
    out, failure = _exact(tmp_path / "cells", base, "excel/append-files", arguments, 11, other)
    assert out.table is not None and out.table.shape == (8, 3)
    assert failure.details["unit"] == "empty cells"


@pytest.mark.parametrize("seed", range(5))
def test_join_pairs_counts_an_inner_joins_rows(seed: int) -> None:
    keys = pl.Series([None, 1, 2, 3, 3, 4], dtype=pl.Int64)
    left = pl.DataFrame({"a": keys.sample(40, with_replacement=True, seed=seed), "b": "x"})
    right = pl.DataFrame({"a": keys.sample(30, with_replacement=True, seed=seed + 9), "b": "x"})
    assert join_pairs(left, right, ["a", "b"]) == left.join(right, on=["a", "b"]).height


# --- through the live API ------------------------------------------------------------------

ROWS = 12_000  # the issue's files: 12,000 rows, about 100 KB each


@pytest.fixture(scope="module")
def bounded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, str]]:
    """A server with max_rows=1500, a chat with the issue's two constant-key csv files."""
    tmp = tmp_path_factory.mktemp("bounded")
    left = tmp / "left.csv"
    right = tmp / "right.csv"
    left.write_text(
        "id,key,label,a,b,c\n"
        + "".join(f"{i},k,x-{i % 7},{i},{i * 2},{i * 3}\n" for i in range(ROWS))
    )
    right.write_text("key,price,name\n" + "".join(f"k,{i},item {i}\n" for i in range(ROWS)))
    settings = make_settings(tmp / "data", max_rows=1500)
    with run_server(settings) as live, httpx.Client(base_url=live.url, timeout=120) as client:
        chat_id = create_chat(client)
        assert upload(client, chat_id, right).status_code == 201
        assert upload(client, chat_id, left).status_code == 201
        yield client, chat_id


GROWING = {
    "excel/lookup-join": {"right_file": "right.csv", "left_on": "key"},
    "excel/pivot": {"index": ["id"], "columns": "label", "values": "a"},
    "excel/unpivot": {"id_columns": ["id", "key", "label"]},
    "excel/split-column": {"column": "label", "delimiter": "-"},
    "excel/append-files": {"files": ["right.csv"]},
}


@pytest.mark.parametrize("operation", sorted(GROWING))
def test_a_growing_step_past_max_rows_is_refused_in_dry_and_real_runs(
    bounded: tuple[httpx.Client, str], operation: str
) -> None:
    client, chat_id = bounded
    body = {
        "input": "left.csv",
        "steps": [{"operation": operation, "arguments": GROWING[operation]}],
    }
    execute = f"{API}/chat/workflows/{chat_id}/execute"

    dry = client.post(f"{execute}?dry_run=true", json=body)
    assert dry.status_code == 422, dry.text
    error = dry.json()["error"]
    assert error["code"] == "too_many_rows"
    assert error["message"].startswith(f"steps[0] ({operation}): ")
    assert "at most 1,500 are allowed" in error["message"]
    assert error["details"]["max_rows"] == 1500

    real = client.post(f"{execute}?wait=true", json=body)
    assert real.status_code == 200, real.text
    run = real.json()["data"]
    assert run["status"] == "failed"
    assert run["error"]["code"] == "too_many_rows"
    assert run["outputs"] == []
    events = client.get(f"{API}/chat/workflows/{chat_id}/events?since=0").json()["data"]
    failed = [e for e in events if e["type"] == "workflow_failed" and e["run_id"] == run["run_id"]]
    assert [e["error"]["code"] for e in failed] == ["too_many_rows"]

    assert client.get(f"{API}/health").json()["data"]["status"] == "ok"


def test_the_issues_join_is_refused_with_the_exact_estimate_and_the_server_goes_on(
    bounded: tuple[httpx.Client, str],
) -> None:
    client, chat_id = bounded
    execute = f"{API}/chat/workflows/{chat_id}/execute"
    body = {
        "input": "left.csv",
        "steps": [{"operation": "excel/lookup-join", "arguments": GROWING["excel/lookup-join"]}],
    }
    run = client.post(f"{execute}?wait=true", json=body).json()["data"]
    assert run["error"]["code"] == "too_many_rows"
    assert "would make 144,000,000 rows" in run["error"]["message"]

    # The server still runs work: a join on a unique key stays within 1,500 rows.
    small = {
        "input": "left.csv",
        "steps": [
            {
                "operation": "excel/filter-rows",
                "arguments": {"conditions": [{"column": "id", "op": "lt", "value": 1000}]},
            },
            {
                "operation": "excel/lookup-join",
                "arguments": {"right_file": "left.csv", "left_on": "id", "take_columns": ["b"]},
            },
        ],
    }
    done = client.post(f"{execute}?wait=true", json=small).json()["data"]
    assert done["status"] == "completed", done
    assert done["steps"][1]["result"]["rows_out"] == 1000
