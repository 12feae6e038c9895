"""Cost against size: three workflows on 10k, 100k and 1M rows x 10 columns, csv and xlsx in.

Per input kind and size, each workflow runs through ``POST .../execute?wait=true`` on this
tree's default server (upload excluded), and the same work runs with the plain libraries in this
process: polars' ``read_csv`` or fastexcel, polars, and the default xlsx engine's library or
``write_csv``.  Reported per cell: seconds per million input cells; per size: the peak RSS of
the server and its children during the runs above what they held before, against the size of
the parsed table (``DataFrame.estimated_size``).

- seed:   extract customer_id, postal_code, city, duplicates removed, to xlsx;
- group:  group by city (sum of quantity, mean of unit_price, count), to xlsx;
- filter: rows with quantity >= 250 (about half), to csv.

At the largest size, the seed workflow on the xlsx input is also watched over the chat's
WebSocket: the longest silence between its progress events (overall, and while it writes its
output), then a second run cancelled once it is writing, timed from the request to its
``workflow_cancelled`` event.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastexcel
import polars as pl
from websockets.sync.client import ClientConnection, connect

from benchmarks.data import EXTRACT_COLUMNS
from benchmarks.edges import rust_plain
from benchmarks.options import Options
from benchmarks.probes import RssSampler
from benchmarks.results import Results
from benchmarks.serving import API, Side, check, create_chat, upload_file
from benchmarks.sheets import through_api
from chatflow.spreadsheets.writing_rust import write_sheets

log = logging.getLogger("benchmarks")
KINDS = ("csv", "xlsx")
_GROUP = {
    "by": ["city"],
    "aggregations": [
        {"column": "quantity", "fn": "sum", "as": "quantity"},
        {"column": "unit_price", "fn": "mean", "as": "mean_price"},
        {"fn": "count", "as": "orders"},
    ],
}
WORKFLOWS: dict[str, list[dict[str, Any]]] = {
    "seed": [
        {
            "operation": "excel/extract-columns-to-file",
            "arguments": {"columns": EXTRACT_COLUMNS, "remove_duplicates": True},
        }
    ],
    "group": [
        {"operation": "excel/group-aggregate", "arguments": _GROUP},
        {"operation": "excel/convert", "arguments": {"format": "xlsx"}},
    ],
    "filter": [
        {
            "operation": "excel/filter-rows",
            "arguments": {"conditions": [{"column": "quantity", "op": "ge", "value": 250}]},
        },
        {"operation": "excel/convert", "arguments": {"format": "csv"}},
    ],
}


def orders(rows: int) -> pl.DataFrame:
    """``rows`` orders like ``data.write_orders_xlsx``'s, generated column-wise by polars."""

    def pick(seed: int, n: int) -> pl.Expr:
        return (pl.col("i").hash(seed) % n).cast(pl.Int64)

    def digits(value: pl.Expr, width: int) -> pl.Expr:
        return value.cast(pl.String).str.zfill(width)

    customer = pick(1, 90_000)
    statuses = pl.Series(["new", "paid", "shipped", "returned", "cancelled"])
    return pl.DataFrame({"i": pl.int_range(rows, eager=True)}).select(
        digits(customer * 97 + 3, 8).alias("customer_id"),
        digits(customer % 99_000 + 500, 5).alias("postal_code"),
        pl.format("City {}", customer % 60).alias("city"),
        pl.format("Silva, Ana {}", customer % 1000).alias("name"),  # csv quotes it (the comma)
        digits(pick(2, 5_000), 6).alias("product_code"),
        (pick(3, 500) + 1).alias("quantity"),
        ((pick(4, 99_900) + 50) / 100).alias("unit_price"),
        (pick(5, 3_000) / 10_000).alias("discount"),
        (pl.date(2020, 1, 1) + pl.duration(days=pick(6, 1500))).alias("order_date"),
        pl.lit(statuses).gather(pick(7, 5)).alias("status"),
    )


def write_inputs(work: Path, rows: int) -> dict[str, Path]:
    table = orders(rows)
    paths = {kind: work / f"orders_{rows}.{kind}" for kind in KINDS}
    table.write_csv(paths["csv"])
    write_sheets({"Orders": table}, paths["xlsx"], None)
    return paths


def read_plain(path: Path) -> pl.DataFrame:
    if path.suffix == ".csv":
        return pl.read_csv(path)
    return fastexcel.read_excel(path).load_sheet(0).to_polars()


PLAIN: dict[str, Callable[[pl.DataFrame, Path], None]] = {
    "seed": lambda df, out: rust_plain(
        df.select(EXTRACT_COLUMNS).unique(keep="first", maintain_order=True), out / "seed.xlsx"
    ),
    "group": lambda df, out: rust_plain(
        df.group_by("city", maintain_order=True).agg(
            pl.col("quantity").sum(), pl.col("unit_price").mean().alias("mean_price"), pl.len()
        ),
        out / "group.xlsx",
    ),
    "filter": lambda df, out: df.filter(pl.col("quantity") >= 250).write_csv(out / "f.csv"),
}


def run_scaling(res: Results, side: Side, work: Path, opts: Options) -> None:
    """Every size, kind and workflow, ``opts.reps`` rounds each, service beside plain."""
    chat = create_chat(side.client, "bench: scaling")
    warm = True  # the first run starts the worker processes: not counted
    for rows in opts.scale_rows:
        for kind, path in write_inputs(work, rows).items():
            upload_file(side.client, chat, path, path.name)
            if warm:
                through_api(side.client, chat, WORKFLOWS["seed"], source=path.name)
                warm = False
            table = read_plain(path)
            cells_m = table.height * table.width / 1e6
            with RssSampler(side.server.pid) as rss:
                for rep in range(opts.reps):
                    log.info("scaling %s %d rows, round %d/%d", kind, rows, rep + 1, opts.reps)
                    _one_round(res, side, chat, path, f"{kind}_{rows}", cells_m)
            grown = rss.growth_mb()
            table_mb = table.estimated_size() / 2**20
            label = f"{kind} {rows:,} rows: peak RSS growth"
            res.add(f"mem_{kind}_{rows}", label, "MB", grown["total"])
            res.add(f"mem_server_{kind}_{rows}", "    of the server process", "MB", grown["server"])
            res.add(f"mem_children_{kind}_{rows}", "    of its children", "MB", grown["children"])
            res.add(f"table_{kind}_{rows}", "    the parsed table", "MB", table_mb)
            res.ratio(
                f"mem/table_{kind}_{rows}",
                "    growth / table",
                f"mem_{kind}_{rows}",
                f"table_{kind}_{rows}",
            )
            if kind == "xlsx" and rows == opts.scale_rows[-1]:
                _watch_progress_and_cancel(res, side, chat, path.name)
            path.unlink()
    for kind in KINDS:
        low, high = opts.scale_rows[-2:]
        for name in WORKFLOWS:
            res.ratio(
                f"per_cell_{name}_{kind}",
                f"{name}, {kind}: cost per cell at {high:,} rows / at {low:,} rows",
                f"svc_{name}_{kind}_{high}",
                f"svc_{name}_{kind}_{low}",
            )


WRITING = 75  # a step's progress past this is its output being written
ENDED = {"workflow_completed", "workflow_failed", "workflow_cancelled"}


def _watch_progress_and_cancel(res: Results, side: Side, chat: str, source: str) -> None:
    with connect(f"{side.server.ws_url}/chat/{chat}", open_timeout=10) as ws:
        run_id = _start(side, chat, source)
        seen = _events_until(ws, run_id, lambda event: event["type"] in ENDED)
        ticks = [(t, e.get("progress", 0)) for t, e in seen if e["type"] == "progress"]
        for key, label, kept in (
            ("gap", "the whole run", ticks),
            ("gap_write", "while writing", [(t, p) for t, p in ticks if p >= WRITING]),
        ):
            gaps = [b[0] - a[0] for a, b in itertools.pairwise(kept)]
            longest = max(gaps, default=float("nan"))
            res.add(f"progress_{key}", f"seed, xlsx, largest: longest gap, {label}", "s", longest)
        run_id = _start(side, chat, source)
        _events_until(ws, run_id, lambda e: e["type"] == "progress" and e["progress"] >= WRITING)
        asked = time.perf_counter()
        check(side.client.post(f"{API}/chat/workflows/{chat}/runs/{run_id}/cancel"), 202)
        (ended, event), *_ = _events_until(ws, run_id, lambda e: e["type"] in ENDED)[-1:]
        if event["type"] != "workflow_cancelled":
            raise RuntimeError(f"the cancelled run ended with {event['type']}")
        res.add(
            "cancel_s",
            "    a cancel while writing: request to workflow_cancelled",
            "s",
            ended - asked,
        )


def _start(side: Side, chat: str, source: str) -> str:
    body = {"input": source, "steps": WORKFLOWS["seed"]}
    return str(
        check(side.client.post(f"{API}/chat/workflows/{chat}/execute", json=body), 202)["run_id"]
    )


def _events_until(
    ws: ClientConnection, run_id: str, last: Callable[[dict[str, Any]], bool]
) -> list[tuple[float, dict[str, Any]]]:
    """(arrival time, event) of ``run_id``'s events, up to the first ``last`` one."""
    seen = []
    while True:
        event = json.loads(ws.recv(timeout=600))
        if event.get("run_id") == run_id:
            seen.append((time.perf_counter(), event))
            if last(event):
                return seen


def _one_round(res: Results, side: Side, chat: str, path: Path, key: str, cells_m: float) -> None:
    for name, steps in WORKFLOWS.items():
        service = through_api(side.client, chat, steps, source=path.name).seconds
        started = time.perf_counter()
        PLAIN[name](read_plain(path), path.parent)
        plain = time.perf_counter() - started
        label = f"{name}, {key.replace('_', ' ')} rows"
        res.add(
            f"svc_{name}_{key}", f"{label}: service, s per million cells", "s", service / cells_m
        )
        res.add(f"plain_{name}_{key}", "    plain libraries in one process", "s", plain / cells_m)


def scaling_markdown(res: Results, opts: Options) -> str:
    """The scaling table: seconds per million cells, service / plain, and memory per size."""
    sizes = opts.scale_rows
    head = " | ".join(f"{rows:,} rows" for rows in sizes)
    lines = [
        f"| workflow, input | {head} | per cell, {sizes[-1]:,} / {sizes[-2]:,} |",
        "|---|" + "---:|" * (len(sizes) + 1),
    ]
    for kind in KINDS:
        for name in WORKFLOWS:
            cells = [
                f"{res.median(f'svc_{name}_{kind}_{rows}'):.2f} / "
                f"{res.median(f'plain_{name}_{kind}_{rows}'):.2f}"
                for rows in sizes
            ]
            ratio = res.median(f"per_cell_{name}_{kind}")
            lines.append(f"| {name}, {kind} | {' | '.join(cells)} | {ratio:.2f}x |")
    lines += ["", "| input | rows | parsed table | peak RSS growth (server; children) | / table |"]
    lines.append("|---|---:|---:|---:|---:|")
    for kind in KINDS:
        for rows in sizes:
            table, grown = res.median(f"table_{kind}_{rows}"), res.median(f"mem_{kind}_{rows}")
            server = res.median(f"mem_server_{kind}_{rows}")
            children = res.median(f"mem_children_{kind}_{rows}")
            lines.append(
                f"| {kind} | {rows:,} | {table:.1f} MB | {grown:.0f} MB ({server:.0f}; "
                f"{children:.0f}) | {grown / table:.1f}x |"
            )
    note = "seconds per million input cells, median: the service via HTTP / plain libraries"
    return f"\nScaling ({note}):\n\n" + "\n".join(lines) + "\n"
