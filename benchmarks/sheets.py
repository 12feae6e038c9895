"""Measurement 1: the generated xlsx through the floor, the service, a chain and the naive way.

(a)  the floor, in this process: plain fastexcel (its own types) + polars + xlsxwriter writing
     typed cells; (a_project) the project's ``read_table`` + the operation + ``write_workbook``;
(b)  the seed's extract-columns workflow through ``POST .../execute?wait=true`` (upload excluded);
(c)  a 5-step chain the same way, against its own floor (a_c) in this process;
(d)  the naive way: openpyxl read-only in, a Python set for duplicates, openpyxl write-only out;
(b_rust) (b) on a server set to the optional Rust xlsx engine, beside (a_project) with each engine.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastexcel
import httpx
import openpyxl
import polars as pl
import xlsxwriter

from benchmarks.data import EXTRACT_COLUMNS, INPUT
from benchmarks.options import Options
from benchmarks.results import Results
from benchmarks.serving import create_chat, execute_wait, serve, upload_file
from chatflow.operations.extract_columns import extract_columns
from chatflow.spreadsheets.reading import read_table
from chatflow.spreadsheets.writing import RUST_ENGINE, XlsxEngine, write_workbook

log = logging.getLogger("benchmarks")

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
    {"operation": "excel/add-column", "arguments": {"name": "row_no", "row_number": True}},
    {"operation": "excel/convert", "arguments": {"format": "xlsx", "output": "orders_chain.xlsx"}},
]


@dataclass(frozen=True)
class Timed:
    seconds: float
    rows_out: int
    write_s: float = 0.0  # of which the write
    inside_s: float = 0.0  # through the API: the steps' own time inside the server


def floor_plain(src: Path, out: Path) -> Timed:
    """(a): fastexcel with its own types + polars + xlsxwriter writing typed cells."""
    t0 = time.perf_counter()
    df = fastexcel.read_excel(src).load_sheet(0).to_polars()
    table = df.select(EXTRACT_COLUMNS).unique(keep="first", maintain_order=True)
    t1 = time.perf_counter()
    options = {"constant_memory": True, "strings_to_numbers": False, "strings_to_formulas": False}
    workbook = xlsxwriter.Workbook(str(out / "floor_plain.xlsx"), options)
    sheet = workbook.add_worksheet("Sheet1")
    date_format = workbook.add_format({"num_format": "yyyy-mm-dd"})
    writers = []
    for col, (name, dtype) in enumerate(table.schema.items()):
        sheet.write_string(0, col, name)
        if dtype.is_numeric():
            writers.append(sheet.write_number)
        elif dtype.is_temporal():
            writers.append(lambda r, c, v: sheet.write_datetime(r, c, v, date_format))
        elif dtype == pl.Boolean:
            writers.append(sheet.write_boolean)
        else:
            writers.append(sheet.write_string)
    for row, values in enumerate(table.iter_rows(), start=1):
        for col, value in enumerate(values):
            if value is not None:
                writers[col](row, col, value)
    workbook.close()
    return Timed(time.perf_counter() - t0, table.height, time.perf_counter() - t1)


def floor_project(src: Path, out: Path, engine: XlsxEngine = "xlsxwriter") -> Timed:
    """(a_project): ``read_table`` + the operation's own polars code + ``write_workbook``."""
    t0 = time.perf_counter()
    table = extract_columns(read_table(src, kind="xlsx"), EXTRACT_COLUMNS, remove_duplicates=True)
    t1 = time.perf_counter()
    write_workbook({"Sheet1": table}, out / f"floor_{engine}.xlsx", engine=engine)
    return Timed(time.perf_counter() - t0, table.height, time.perf_counter() - t1)


def floor_chain(src: Path, out: Path) -> Timed:
    """(a_c): what CHAIN_STEPS compute, in plain polars, between ``read_table`` and the write."""
    t0 = time.perf_counter()
    df = read_table(src, kind="xlsx").filter(pl.col("status") == "shipped")
    df = df.filter(pl.struct("customer_id", "product_code").is_first_distinct())
    df = df.sort("postal_code", maintain_order=True)
    df = df.with_columns(pl.int_range(1, df.height + 1, dtype=pl.Int64).alias("row_no"))
    write_workbook({"Sheet1": df}, out / "floor_chain.xlsx")
    return Timed(time.perf_counter() - t0, df.height)


def naive_openpyxl(src: Path, out: Path) -> Timed:
    """(d): openpyxl read-only row by row, a set for duplicates, openpyxl write-only."""
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
    written = openpyxl.Workbook(write_only=True)
    sheet = written.create_sheet("Sheet1")
    sheet.append(EXTRACT_COLUMNS)
    for key in kept:
        sheet.append(key)
    written.save(out / "naive_openpyxl.xlsx")
    return Timed(time.perf_counter() - t0, len(kept))


def through_api(client: httpx.Client, chat_id: str, steps: list[dict[str, Any]]) -> Timed:
    """Wall time of ``POST .../execute?wait=true``, with the steps' time inside the server."""
    t0 = time.perf_counter()
    run = execute_wait(client, chat_id, steps, INPUT)
    elapsed = time.perf_counter() - t0
    inside = sum((step.get("duration_ms") or 0) for step in run["steps"]) / 1000
    rows = int(run["outputs"][-1]["row_count"]) if run["outputs"] else -1
    return Timed(elapsed, rows, inside_s=inside)


def run_spreadsheet(res: Results, client: httpx.Client, xlsx: Path, opts: Options) -> None:
    """a, a_project, b, a_c, c, d back to back, ``opts.reps`` rounds after a warm-up (b)."""
    chat = create_chat(client, "bench: spreadsheet")
    upload_file(client, chat, xlsx, INPUT)
    through_api(client, chat, EXTRACT_STEPS)
    out = xlsx.parent
    rows: dict[str, set[int]] = {}
    for rep in range(opts.reps):
        log.info("spreadsheet round %d/%d", rep + 1, opts.reps)
        measured = {
            "a": floor_plain(xlsx, out),
            "a_project": floor_project(xlsx, out),
            "b": through_api(client, chat, EXTRACT_STEPS),
            "a_chain": floor_chain(xlsx, out),
            "c": through_api(client, chat, CHAIN_STEPS),
            "d": naive_openpyxl(xlsx, out),
        }
        for key, timed in measured.items():
            res.add(key, LABELS[key], "s", timed.seconds)
            rows.setdefault("chain" if key in ("a_chain", "c") else "extract", set()).add(
                timed.rows_out
            )
        res.add(
            "b_inside", "    (b) of which the step inside the server", "s", measured["b"].inside_s
        )
    res.ratio("b/a", "b/a: service vs floor", "b", "a")
    res.ratio(
        "b/a_project", "b/a_project: service vs read_table + write_workbook", "b", "a_project"
    )
    res.ratio("c/a_chain", "c/a_c: 5-step chain vs its floor", "c", "a_chain")
    res.ratio("d/b", "d/b: naive openpyxl vs service", "d", "b")
    res.notes.append(
        f"(a), (a_project), (b), (d) wrote {sorted(rows['extract'])} rows x 3 columns; (a_c) and "
        f"(c) {sorted(rows['chain'])} rows x 11 (one number each when they agree)."
    )


LABELS = {
    "a": "(a) floor: fastexcel typed + polars + xlsxwriter typed",
    "a_project": "(a_project) read_table + extract + write_workbook, in process",
    "b": "(b) extract-columns workflow via HTTP, ?wait=true",
    "a_chain": "(a_c) chain floor: read_table + polars + write_workbook",
    "c": "(c) 5-step chain via HTTP, ?wait=true",
    "d": "(d) naive: openpyxl read_only + write_only",
}


def run_writer(res: Results, xlsx: Path, work: Path, opts: Options) -> None:
    """The optional Rust engine: its write beside xlsxwriter's, and (b) on a server set to it."""
    with (
        serve(work / "data-rust", work / "server-rust.log", xlsx_writer=RUST_ENGINE) as server,
        httpx.Client(base_url=server.url, timeout=None) as client,
    ):
        chat = create_chat(client, "bench: rust writer")
        upload_file(client, chat, xlsx, INPUT)
        through_api(client, chat, EXTRACT_STEPS)  # warm-up
        for rep in range(opts.reps):
            log.info("writer round %d/%d", rep + 1, opts.reps)
            a = floor_project(xlsx, work)
            a_rust = floor_project(xlsx, work, RUST_ENGINE)
            b_rust = through_api(client, chat, EXTRACT_STEPS)
            res.add("w_write", "(a_project) of which the write, xlsxwriter", "s", a.write_s)
            res.add(
                "w_write_rust", "(a_project) of which the write, Rust engine", "s", a_rust.write_s
            )
            res.add(
                "b_rust", "(b_rust) extract workflow via HTTP, Rust engine", "s", b_rust.seconds
            )
    res.ratio(
        "write rust/xlsxwriter", "write only: Rust engine vs xlsxwriter", "w_write_rust", "w_write"
    )
