"""The seed workflow on the generated xlsx: the best plain libraries, the service, the naive ways.

(a)  the floor, in this process: plain fastexcel (its own types) + polars + the default xlsx
     engine's library used plainly (``workflows.plain_workflow``);
(b)  the seed's extract-columns workflow through ``POST .../execute?wait=true`` (upload excluded);
(d)  the naive way: openpyxl read-only in, a hash of the rows seen, openpyxl write-only out;
(e)  pandas with openpyxl, as a user would write it: ``read_excel``, ``drop_duplicates``,
     ``to_excel``.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from benchmarks.data import INPUT
from benchmarks.options import Options
from benchmarks.results import Results
from benchmarks.serving import Server, Timed, chat_with, through_api
from benchmarks.workflows import (
    STEPS,
    default_engine,
    naive_openpyxl,
    pandas_openpyxl,
    plain_workflow,
)

log = logging.getLogger("benchmarks")
LABELS = {
    "a": "(a) floor: fastexcel typed + polars + plain {engine}",
    "b": "(b) extract-columns workflow via HTTP, ?wait=true",
    "d": "(d) naive: openpyxl read_only + write_only",
    "e": "(e) pandas read_excel + drop_duplicates + to_excel, openpyxl",
}


def run_spreadsheet(res: Results, server: Server, xlsx: Path, opts: Options) -> None:
    """a, b, d, e back to back, ``opts.reps`` rounds after a warm-up (b)."""
    out = xlsx.parent
    with httpx.Client(base_url=server.url, timeout=None) as client:
        chat = chat_with(client, "bench: spreadsheet", xlsx, INPUT)
        through_api(client, chat, STEPS["seed"], INPUT)
        ways: dict[str, Callable[[], Timed]] = {
            "a": lambda: _timed(plain_workflow, "seed", xlsx, out),
            "b": lambda: through_api(client, chat, STEPS["seed"], INPUT),
            "d": lambda: _timed(naive_openpyxl, xlsx, out),
        }
        if importlib.util.find_spec("pandas"):
            ways["e"] = lambda: _timed(pandas_openpyxl, xlsx, out)
        else:
            res.notes.append("(e) not measured: pandas is not installed (pip install pandas).")
        rows: set[int] = set()
        for rep in range(opts.reps):
            log.info("spreadsheet round %d/%d", rep + 1, opts.reps)
            for key, way in ways.items():
                timed = way()
                res.add(key, LABELS[key].format(engine=default_engine()), "s", timed.seconds)
                if key == "b":
                    res.add("b_in", "    of which the step inside the server", "s", timed.inside_s)
                rows.add(timed.rows_out)
    res.ratio("b/a", "b/a: service vs floor", "b", "a")
    res.ratio("d/b", "d/b: naive openpyxl vs service", "d", "b")
    res.ratio("e/b", "e/b: pandas + openpyxl vs service", "e", "b")
    res.notes.append(f"(a), (b), (d), (e) wrote {sorted(rows)} rows x 3 (one number if all agree).")


def _timed(call: Callable[..., int], *args: object) -> Timed:
    started = time.perf_counter()
    rows = call(*args)
    return Timed(time.perf_counter() - started, rows, 0.0)
