"""The read and write edges: the project's typed read and its default xlsx engine against their
libraries used plainly, on the generated 100k x 10 xlsx, and the csv read against
``pl.read_csv`` on 1M x 10 orders; each pair timed in this process."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Literal

import polars as pl

from benchmarks.data import orders
from benchmarks.options import Options
from benchmarks.results import Results
from benchmarks.workflows import PLAIN_WRITERS, default_engine, read_plain
from chatflow.spreadsheets.cell_types import type_text_columns
from chatflow.spreadsheets.reading import read_table
from chatflow.spreadsheets.writing import write_workbook


def paired(calls: dict[str, Callable[[], object]], reps: int) -> dict[str, list[float]]:
    """``reps`` rounds of every call, the order reversed every other round, after one round
    that is not kept (the first call of each pays for lazy imports and cold caches)."""
    for call in calls.values():
        call()
    seconds: dict[str, list[float]] = {name: [] for name in calls}
    for rep in range(reps):
        for name in list(calls)[:: 1 if rep % 2 == 0 else -1]:
            started = time.perf_counter()
            calls[name]()
            seconds[name].append(time.perf_counter() - started)
    return seconds


def run_read(res: Results, xlsx: Path, opts: Options) -> None:
    """``read_table`` vs ``fastexcel.read_excel(p).load_sheet(0).to_polars()``."""
    project = partial(read_table, xlsx, kind="xlsx")
    got = paired({"plain": partial(read_plain, xlsx), "project": project}, opts.read_reps)
    for plain_s, project_s in zip(got["plain"], got["project"], strict=True):
        res.add("read_plain", "plain fastexcel read into polars", "s", plain_s)
        res.add("read", "read_table", "s", project_s)
    res.ratio("read/plain", "read: read_table vs fastexcel", "read", "read_plain")


def run_write(res: Results, xlsx: Path, opts: Options) -> None:
    """The default engine through ``write_workbook`` vs its library used plainly, on the table
    ``read_table`` gives."""
    table, out = read_table(xlsx, kind="xlsx"), xlsx.parent
    engine = default_engine()
    got = paired(
        {
            "project": partial(
                write_workbook, {"Sheet1": table}, out / "project.xlsx", engine=engine
            ),
            "plain": partial(PLAIN_WRITERS[engine], table, out / "plain.xlsx"),
        },
        opts.reps,
    )
    for project, plain in zip(got["project"], got["plain"], strict=True):
        res.add("write", f"write_workbook, {engine} (the default)", "s", project)
        res.add("write_plain", f"plain {engine}", "s", plain)
    res.ratio("write/plain", f"write: {engine} vs plain", "write", "write_plain")


def run_csv_read(res: Results, work: Path, opts: Options) -> None:
    """``read_table`` vs ``pl.read_csv`` on the orders as csv, as polars writes them (only the
    names quoted) and with every field quoted; also the type rule alone on the text table,
    the part of the read that polars' own inference cannot be trusted with."""
    table = orders(opts.scale_rows[-1])
    styles: tuple[tuple[str, Literal["necessary", "always"]], ...] = (
        ("csv", "necessary"),
        ("csv_quoted", "always"),
    )
    for variant, quote_style in styles:
        path = work / f"orders_{variant}.csv"
        table.write_csv(path, quote_style=quote_style)
        text = pl.read_csv(path, infer_schema=False)
        got = paired(
            {
                "plain": partial(pl.read_csv, path),
                "project": partial(read_table, path, kind="csv"),
                "rule": partial(type_text_columns, text),
            },
            opts.read_reps,
        )
        rows = f"{table.height:,} rows"
        for plain_s, project_s, rule_s in zip(*got.values(), strict=True):
            res.add(f"{variant}_plain", f"pl.read_csv, {rows}, {variant}", "s", plain_s)
            res.add(f"{variant}_read", f"read_table, {rows}, {variant}", "s", project_s)
            res.add(f"{variant}_rule", f"the type rule alone, {rows}, {variant}", "s", rule_s)
            res.add(
                f"{variant}_parse", f"read_table less the rule, {variant}", "s", project_s - rule_s
            )
        res.ratio(
            f"{variant}/plain",
            f"{variant}: read_table vs pl.read_csv",
            f"{variant}_read",
            f"{variant}_plain",
        )
        res.ratio(
            f"{variant}_parse/plain",
            f"{variant}: read_table less the type rule vs pl.read_csv",
            f"{variant}_parse",
            f"{variant}_plain",
        )
