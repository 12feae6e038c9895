"""Measurement 1: the 100k x 10 workbook through the floor, the service and the naive way.

(a)  the floor, in this process: the project's own reader and writer (``read_table`` +
     ``write_xlsx``), and plain fastexcel + xlsxwriter, producing what the workflow produces;
(b)  the seed's extract-columns workflow through the HTTP API (``?wait=true``; upload excluded);
(c)  a 5-step chain through the HTTP API, and its own floor in this process;
(d)  the same work as (b) the naive way: openpyxl read-only in, openpyxl write-only out.
(w)  the two xlsx engines side by side (``compare_writers``; ``python -m benchmarks.spreadsheet
     orders.xlsx``): the (a) floor with each engine, and each engine writing the 100k x 10 input.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastexcel
import httpx
import openpyxl
import polars as pl
import xlsxwriter

from benchmarks.data import EXTRACT_COLUMNS
from benchmarks.server import execute_wait
from chatflow.operations.extract_columns import extract_columns
from chatflow.spreadsheets.reading import read_table
from chatflow.spreadsheets.writing import RUST_ENGINE, XlsxEngine, write_workbook

EXTRACT_STEPS: list[dict[str, Any]] = [
    {
        "operation": "excel/extract-columns-to-file",
        "arguments": {"columns": EXTRACT_COLUMNS, "remove_duplicates": True},
    }
]
CHAIN_STEPS: list[dict[str, Any]] = [
    {
        "operation": "excel/filter-rows",
        "arguments": {"conditions": [{"column": "status", "op": "eq", "value": "shipped"}]},
    },
    {
        "operation": "excel/remove-duplicates",
        "arguments": {"columns": ["customer_id", "product_code"]},
    },
    {
        "operation": "excel/sort",
        "arguments": {"by": [{"column": "postal_code", "compare_as": "text"}]},
    },
    # row_number rather than a template: a run stores its arguments with every default filled
    # in, and a templated add-column then fails re-validation ("start only applies with
    # row_number=true") when the step starts, leaving the run "running".
    {"operation": "excel/add-column", "arguments": {"name": "row_no", "row_number": True}},
    {"operation": "excel/convert", "arguments": {"format": "xlsx", "output": "orders_chain.xlsx"}},
]


@dataclass
class Timed:
    seconds: float
    rows_out: int
    detail: dict[str, float]


# --- (a) the floor ----------------------------------------------------------------------------


def floor_project(src: Path, out_dir: Path, engine: XlsxEngine = "xlsxwriter") -> Timed:
    """read_table + the operation's own polars code + write_xlsx, in this process."""
    t0 = time.perf_counter()
    df = read_table(src, kind="xlsx")
    t1 = time.perf_counter()
    out = extract_columns(df, EXTRACT_COLUMNS, remove_duplicates=True)
    t2 = time.perf_counter()
    write_workbook({"Sheet1": out}, out_dir / f"floor_project_{engine}.xlsx", engine=engine)
    t3 = time.perf_counter()
    return Timed(t3 - t0, out.height, {"read": t1 - t0, "compute": t2 - t1, "write": t3 - t2})


def floor_plain(src: Path, out_dir: Path) -> Timed:
    """fastexcel with its own types + polars + xlsxwriter writing typed cells, nothing else."""
    t0 = time.perf_counter()
    df = fastexcel.read_excel(src).load_sheet(0).to_polars()
    t1 = time.perf_counter()
    out = df.select(EXTRACT_COLUMNS).unique(keep="first", maintain_order=True)
    t2 = time.perf_counter()
    workbook = xlsxwriter.Workbook(
        str(out_dir / "floor_plain.xlsx"),
        {"constant_memory": True, "strings_to_numbers": False, "strings_to_formulas": False},
    )
    sheet = workbook.add_worksheet("Sheet1")
    date_format = workbook.add_format({"num_format": "yyyy-mm-dd"})
    writers = []
    for col, (name, dtype) in enumerate(out.schema.items()):
        sheet.write_string(0, col, name)
        if dtype.is_numeric():
            writers.append(sheet.write_number)
        elif dtype.is_temporal():
            writers.append(lambda r, c, v: sheet.write_datetime(r, c, v, date_format))
        elif dtype == pl.Boolean:
            writers.append(sheet.write_boolean)
        else:
            writers.append(sheet.write_string)
    for row, values in enumerate(out.iter_rows(), start=1):
        for col, value in enumerate(values):
            if value is not None:
                writers[col](row, col, value)
    workbook.close()
    t3 = time.perf_counter()
    return Timed(t3 - t0, out.height, {"read": t1 - t0, "compute": t2 - t1, "write": t3 - t2})


def chain_table(df: pl.DataFrame) -> pl.DataFrame:
    """What CHAIN_STEPS compute, in plain polars (the data has no empty cells)."""
    out = df.filter(pl.col("status") == "shipped")
    out = out.filter(pl.struct("customer_id", "product_code").is_first_distinct())
    out = out.sort("postal_code", maintain_order=True)
    return out.with_columns(pl.int_range(1, out.height + 1, dtype=pl.Int64).alias("row_no"))


def floor_chain(src: Path, out_dir: Path) -> Timed:
    """The chain's floor: read_table + the same transformations in polars + write_xlsx."""
    t0 = time.perf_counter()
    df = read_table(src, kind="xlsx")
    t1 = time.perf_counter()
    out = chain_table(df)
    t2 = time.perf_counter()
    write_workbook({"Sheet1": out}, out_dir / "floor_chain.xlsx")
    t3 = time.perf_counter()
    return Timed(t3 - t0, out.height, {"read": t1 - t0, "compute": t2 - t1, "write": t3 - t2})


# --- (d) the naive way ------------------------------------------------------------------------


def naive_openpyxl(src: Path, out_dir: Path) -> Timed:
    """openpyxl read-only, row by row, a set for duplicates, openpyxl write-only out."""
    t0 = time.perf_counter()
    workbook = openpyxl.load_workbook(src, read_only=True)
    rows = workbook.worksheets[0].iter_rows(values_only=True)
    header = list(next(rows))
    index = [header.index(name) for name in EXTRACT_COLUMNS]
    seen: set[tuple[Any, ...]] = set()
    kept: list[tuple[Any, ...]] = []
    for row in rows:
        key = tuple(row[i] for i in index)
        if key not in seen:
            seen.add(key)
            kept.append(key)
    workbook.close()
    t1 = time.perf_counter()
    out = openpyxl.Workbook(write_only=True)
    sheet = out.create_sheet("Sheet1")
    sheet.append(EXTRACT_COLUMNS)
    for key in kept:
        sheet.append(key)
    out.save(out_dir / "naive_openpyxl.xlsx")
    t2 = time.perf_counter()
    return Timed(t2 - t0, len(kept), {"read_and_dedupe": t1 - t0, "write": t2 - t1})


# --- (b) and (c) through the API -----------------------------------------------------------


def through_api(
    client: httpx.Client, chat_id: str, steps: list[dict[str, Any]], input_name: str
) -> Timed:
    """Wall time of ``POST .../execute?wait=true`` and the server's own step timings."""
    t0 = time.perf_counter()
    run = execute_wait(client, chat_id, steps, input_name)
    elapsed = time.perf_counter() - t0
    steps_s = sum((step.get("duration_ms") or 0) for step in run["steps"]) / 1000
    rows = int(run["outputs"][-1]["row_count"]) if run["outputs"] else -1
    detail = {"steps_total": steps_s, "run_duration": (run.get("duration_ms") or 0) / 1000}
    for step in run["steps"]:
        detail[f"step{step['index']}:{step['operation']}"] = (step.get("duration_ms") or 0) / 1000
    return Timed(elapsed, rows, detail)


def missing_operations(catalogue: dict[str, Any], steps: list[dict[str, Any]]) -> list[str]:
    return [step["operation"] for step in steps if step["operation"] not in catalogue]


# --- (w) the xlsx engines side by side -----------------------------------------------------------


def write_input(src: Path, out_dir: Path, engine: XlsxEngine) -> Timed:
    """The whole 100k x 10 input read with read_table and written back with ``engine``."""
    df = read_table(src, kind="xlsx")
    t0 = time.perf_counter()
    write_workbook({"Sheet1": df}, out_dir / f"input_{engine}.xlsx", engine=engine)
    return Timed(time.perf_counter() - t0, df.height, {})


def compare_writers(src: Path, out_dir: Path, reps: int = 3) -> dict[str, float]:
    """Medians over ``reps`` rounds of the (a) floor's write and of writing the whole input,
    with xlsxwriter and with the rust engine, and the ratios rust / xlsxwriter."""
    runs: dict[str, list[float]] = {}
    for _ in range(reps):
        for engine in ("xlsxwriter", RUST_ENGINE):
            floor = floor_project(src, out_dir, engine)
            runs.setdefault(f"floor_write[{engine}]", []).append(floor.detail["write"])
            runs.setdefault(f"floor_total[{engine}]", []).append(floor.seconds)
            runs.setdefault(f"input_write[{engine}]", []).append(
                write_input(src, out_dir, engine).seconds
            )
    out = {key: statistics.median(values) for key, values in runs.items()}
    for figure in ("floor_write", "floor_total", "input_write"):
        rust, ours = out[f"{figure}[{RUST_ENGINE}]"], out[f"{figure}[xlsxwriter]"]
        out[f"{figure} ratio rust/xlsxwriter"] = rust / ours
    return out


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as work:
        for key, value in compare_writers(Path(sys.argv[1]), Path(work)).items():
            sys.stdout.write(f"{key:<48} {value:8.3f}\n")
