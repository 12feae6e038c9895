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

import httpx
from tests.support import create_chat, upload
from websockets.sync.client import ClientConnection, connect

from benchmarks.data import write_inputs
from benchmarks.options import Options
from benchmarks.probes import RssSampler
from benchmarks.results import Results, table
from benchmarks.serving import API, Server, check, through_api
from benchmarks.workflows import STEPS, plain_workflow, read_plain

log = logging.getLogger("benchmarks")
KINDS = ("csv", "xlsx")
WRITING = 75  # a step's progress past this is its output being written
ENDED = {"workflow_completed", "workflow_failed", "workflow_cancelled"}


def run_scaling(res: Results, server: Server, work: Path, opts: Options) -> None:
    """Every size, kind and workflow, ``opts.reps`` rounds each, service beside plain."""
    with httpx.Client(base_url=server.url, timeout=None) as client:
        chat = create_chat(client, "bench: scaling")
        for rows in opts.scale_rows:
            for kind, path in write_inputs(work, rows).items():
                check(upload(client, chat, path), 201)
                if rows == opts.scale_rows[0] and kind == KINDS[0]:
                    through_api(client, chat, STEPS["seed"], path.name)  # starts the workers
                parsed = read_plain(path)
                with RssSampler(server.pid) as rss:
                    for rep in range(opts.reps):
                        log.info("scaling %s %d rows, round %d/%d", kind, rows, rep + 1, opts.reps)
                        _one_round(res, client, chat, path, parsed.height * parsed.width / 1e6)
                _record_memory(res, f"{kind}_{rows}", rss.growth_mb(), parsed.estimated_size())
                if kind == "xlsx" and rows == opts.scale_rows[-1]:
                    _watch_progress_and_cancel(res, server, client, chat, path.name)
                path.unlink()
    low, high = opts.scale_rows[-2:]
    for kind, name in itertools.product(KINDS, STEPS):
        res.ratio(
            f"per_cell_{name}_{kind}",
            f"{name}, {kind}: cost per cell at {high:,} rows / at {low:,} rows",
            f"svc_{name}_{kind}_{high}",
            f"svc_{name}_{kind}_{low}",
        )


def _one_round(res: Results, client: httpx.Client, chat: str, path: Path, cells_m: float) -> None:
    """Each workflow through the service, then with the plain libraries, per million cells."""
    kind, rows = path.suffix[1:], path.stem.split("_")[-1]
    for name, steps in STEPS.items():
        service = through_api(client, chat, steps, path.name).seconds
        started = time.perf_counter()
        plain_workflow(name, path, path.parent)
        plain = time.perf_counter() - started
        label = f"{name}, {kind} {rows} rows: service, s per million cells"
        res.add(f"svc_{name}_{kind}_{rows}", label, "s", service / cells_m)
        res.add(
            f"plain_{name}_{kind}_{rows}",
            "    plain libraries in one process",
            "s",
            plain / cells_m,
        )


def _record_memory(res: Results, key: str, grown: dict[str, float], table_bytes: float) -> None:
    res.add(f"mem_{key}", f"{key.replace('_', ' ')} rows: peak RSS growth", "MB", grown["total"])
    res.add(f"mem_server_{key}", "    of the server process", "MB", grown["server"])
    res.add(f"mem_children_{key}", "    of its children", "MB", grown["children"])
    res.add(f"table_{key}", "    the parsed table", "MB", table_bytes / 2**20)
    res.ratio(f"mem/table_{key}", "    growth / table", f"mem_{key}", f"table_{key}")


def _watch_progress_and_cancel(
    res: Results, server: Server, client: httpx.Client, chat: str, source: str
) -> None:
    """The longest silence between a run's progress events, then a cancel while it writes."""
    with connect(f"{server.ws_url}/chat/{chat}", open_timeout=10) as ws:
        run_id = _start(client, chat, source)
        seen = _events_until(ws, run_id, lambda event: event["type"] in ENDED)
        ticks = [(t, e.get("progress", 0)) for t, e in seen if e["type"] == "progress"]
        for key, label, kept in (
            ("gap", "the whole run", ticks),
            ("gap_write", "while writing", [(t, p) for t, p in ticks if p >= WRITING]),
        ):
            gaps = [b[0] - a[0] for a, b in itertools.pairwise(kept)]
            longest = max(gaps, default=float("nan"))
            res.add(f"progress_{key}", f"seed, xlsx, largest: longest gap, {label}", "s", longest)
        run_id = _start(client, chat, source)
        _events_until(ws, run_id, lambda e: e["type"] == "progress" and e["progress"] >= WRITING)
        asked = time.perf_counter()
        check(client.post(f"{API}/chat/workflows/{chat}/runs/{run_id}/cancel"), 202)
        ended, event = _events_until(ws, run_id, lambda e: e["type"] in ENDED)[-1]
        if event["type"] != "workflow_cancelled":
            raise RuntimeError(f"the cancelled run ended with {event['type']}")
        label = "    a cancel while writing: request to workflow_cancelled"
        res.add("cancel_s", label, "s", ended - asked)


def _start(client: httpx.Client, chat: str, source: str) -> str:
    body = {"input": source, "steps": STEPS["seed"]}
    return str(check(client.post(f"{API}/chat/workflows/{chat}/execute", json=body), 202)["run_id"])


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


def scaling_markdown(res: Results, opts: Options) -> str:
    """The scaling tables: seconds per million cells, service / plain, and memory per size."""
    sizes = opts.scale_rows
    costs = []
    for kind, name in itertools.product(KINDS, STEPS):
        cells = [
            f"{res.median(f'svc_{name}_{kind}_{rows}'):.2f} / "
            f"{res.median(f'plain_{name}_{kind}_{rows}'):.2f}"
            for rows in sizes
        ]
        costs.append([f"{name}, {kind}", *cells, f"{res.median(f'per_cell_{name}_{kind}'):.2f}x"])
    memory = []
    for kind, rows in itertools.product(KINDS, sizes):
        size, grown = res.median(f"table_{kind}_{rows}"), res.median(f"mem_{kind}_{rows}")
        split = [res.median(f"mem_{part}_{kind}_{rows}") for part in ("server", "children")]
        memory.append(
            [
                kind,
                f"{rows:,}",
                f"{size:.1f} MB",
                f"{grown:.0f} MB ({split[0]:.0f}; {split[1]:.0f})",
            ]
        )
        memory[-1].append(f"{grown / size:.1f}x")
    head = ["workflow, input", *(f"{rows:,} rows" for rows in sizes)]
    head.append(f"per cell, {sizes[-1]:,} / {sizes[-2]:,}")
    mem_head = ["input", "rows", "parsed table", "peak RSS growth (server; children)", "/ table"]
    note = "seconds per million input cells, median: the service via HTTP / plain libraries"
    return f"\nScaling ({note}):\n\n{table(head, costs, '-' + ':' * (len(sizes) + 1))}\n" + table(
        mem_head, memory, "-::::"
    )
