"""The seed workflow on the generated xlsx: the best plain libraries, the service, the naive ways.

(a)  the floor, in this process: plain fastexcel (its own types) + polars + the default xlsx
     engine's library used plainly (``edges.xlsxwriter_plain`` or ``edges.rust_plain``);
(b)  the seed's extract-columns workflow through ``POST .../execute?wait=true`` (upload excluded),
     on this tree's server and on the baseline's (b_base);
(d)  the naive way: openpyxl read-only in, a Python set for duplicates, openpyxl write-only out;
(e)  pandas with openpyxl, as a user would write it: ``read_excel``, ``drop_duplicates``,
     ``to_excel``.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastexcel
import httpx
import openpyxl

from benchmarks.data import EXTRACT_COLUMNS, INPUT
from benchmarks.edges import rust_plain, xlsxwriter_plain
from benchmarks.options import Options
from benchmarks.results import Results
from benchmarks.serving import API, Side, check, create_chat, upload_file
from chatflow.settings import Settings

log = logging.getLogger("benchmarks")

EXTRACT_STEPS: list[dict[str, Any]] = [
    {
        "operation": "excel/extract-columns-to-file",
        "arguments": {"columns": EXTRACT_COLUMNS, "remove_duplicates": True},
    }
]


@dataclass(frozen=True)
class Timed:
    seconds: float
    rows_out: int
    inside_s: float = 0.0  # through the API: the steps' own time inside the server


def floor_plain(src: Path, out: Path, engine: str) -> Timed:
    """(a): fastexcel with its own types + polars + ``engine``'s library used plainly."""
    t0 = time.perf_counter()
    df = fastexcel.read_excel(src).load_sheet(0).to_polars()
    table = df.select(EXTRACT_COLUMNS).unique(keep="first", maintain_order=True)
    write = rust_plain if engine == "rustpy-xlsxwriter" else xlsxwriter_plain
    write(table, out / "floor_plain.xlsx")
    return Timed(time.perf_counter() - t0, table.height)


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


def pandas_openpyxl(src: Path, out: Path) -> Timed:
    """(e): pandas with openpyxl, the way a user would write the seed workflow."""
    import pandas as pd

    t0 = time.perf_counter()
    kept = pd.read_excel(src, engine="openpyxl")[EXTRACT_COLUMNS].drop_duplicates()
    kept.to_excel(out / "pandas_openpyxl.xlsx", index=False, engine="openpyxl")
    return Timed(time.perf_counter() - t0, len(kept))


def through_api(
    client: httpx.Client, chat_id: str, steps: list[dict[str, Any]], source: str = INPUT
) -> Timed:
    """Wall time of ``POST .../execute?wait=true`` on the chat's file ``source``, with the steps'
    time inside the server."""
    t0 = time.perf_counter()
    response = client.post(
        f"{API}/chat/workflows/{chat_id}/execute",
        params={"wait": "true", "timeout": 3600},
        json={"input": source, "steps": steps},
    )
    elapsed = time.perf_counter() - t0
    run = check(response, 200)
    if run.get("status") != "completed":
        raise RuntimeError(f"the run ended {run.get('status')!r}: {run.get('error')}")
    inside = sum((step.get("duration_ms") or 0) for step in run["steps"]) / 1000
    rows = int(run["outputs"][-1]["row_count"]) if run["outputs"] else -1
    return Timed(elapsed, rows, inside_s=inside)


def run_spreadsheet(res: Results, sides: list[Side], xlsx: Path, opts: Options) -> None:
    """a, b on each side, d, e back to back, ``opts.reps`` rounds after a warm-up (b) each."""
    chats = {}
    for side in sides:
        chats[side.tree.key] = create_chat(side.client, "bench: spreadsheet")
        upload_file(side.client, chats[side.tree.key], xlsx, INPUT)
        through_api(side.client, chats[side.tree.key], EXTRACT_STEPS)
    out, engine = xlsx.parent, Settings().xlsx_writer
    if not importlib.util.find_spec(engine.replace("-", "_")):
        engine = "xlsxwriter"  # what the server falls back to without the Rust package
    others: dict[str, Callable[[], Timed]] = {"d": lambda: naive_openpyxl(xlsx, out)}
    if importlib.util.find_spec("pandas"):
        others["e"] = lambda: pandas_openpyxl(xlsx, out)
    else:
        res.notes.append("(e) not measured: pandas is not installed (pip install pandas).")
    rows: set[int] = set()
    for rep in range(opts.reps):
        log.info("spreadsheet round %d/%d", rep + 1, opts.reps)
        measured = {"a": floor_plain(xlsx, out, engine)}
        for side in sides:
            measured[f"b{side.tree.key}"] = through_api(
                side.client, chats[side.tree.key], EXTRACT_STEPS
            )
        measured.update({key: timed() for key, timed in others.items()})
        for key, timed in measured.items():
            label = LABELS.get(key, f"(b) the same on the {sides[-1].tree.label}")
            res.add(key, label.format(engine=engine), "s", timed.seconds)
            if key.startswith("b"):
                res.add(f"{key}_in", "    of which the step inside the server", "s", timed.inside_s)
            rows.add(timed.rows_out)
    res.ratio("b/a", "b/a: service vs floor", "b", "a")
    if len(sides) > 1:
        res.ratio("b_base/a", "b_base/a: the baseline's service vs floor", "b_base", "a")
    res.ratio("d/b", "d/b: naive openpyxl vs service", "d", "b")
    res.ratio("e/b", "e/b: pandas + openpyxl vs service", "e", "b")
    res.notes.append(f"(a), (b), (d), (e) wrote {sorted(rows)} rows x 3 (one number if all agree).")


LABELS = {
    "a": "(a) floor: fastexcel typed + polars + plain {engine}",
    "b": "(b) extract-columns workflow via HTTP, ?wait=true",
    "d": "(d) naive: openpyxl read_only + write_only",
    "e": "(e) pandas read_excel + drop_duplicates + to_excel, openpyxl",
}
