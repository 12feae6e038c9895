"""``make bench``: run every measurement, print the table, write JSON, doc and plot.

``python -m benchmarks [--only PHASES]`` (phases: spreadsheet, writer, health, upload, fanout,
broadcaster, scaling, profile)
(``--only`` is for working on one part: it writes the JSON but leaves the doc alone);
``--render`` rewrites the doc and plot from the last JSON without measuring.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from benchmarks import fanout, report, scaling, spreadsheet, upload
from benchmarks.data import ROWS, write_big_csv, write_orders_xlsx
from benchmarks.loop_health import HealthPoller, loop_lag_stages
from benchmarks.profile import profile_extract
from benchmarks.publish_server import run_publish_server
from benchmarks.report import Results, Target
from benchmarks.server import (
    Server,
    create_chat,
    delete_chat,
    dry_run,
    operations,
    run_server,
    upload_file,
)
from chatflow.spreadsheets.writing import RUST_ENGINE

log = logging.getLogger("benchmarks")

REPO = Path(__file__).resolve().parent.parent
RESULTS_JSON = REPO / "benchmarks" / "results" / "latest.json"
DOC = REPO / "docs" / "benchmarks.md"
PLOT = REPO / "docs" / "benchmarks_ratios.png"

REPS = 3
WS_SUBSCRIBERS = (1, 10, 100)
WS_EVENTS = 10_000  # per repetition over the wire, published by the server itself
WS_PUBLISHERS = 16  # concurrent publishers on the server's loop
PACED_RATE = 200.0
PACED_WS_EVENTS = 2_000
BC_EVENTS = 10_000
BC_PACED_EVENTS = 1_000
SCALING_CHATS = (1, 4, 16)
INPUT = "orders.xlsx"


class _Run:
    reps = REPS  # what this run uses (``--reps``)


RUN = _Run()
PHASES = (
    "spreadsheet",
    "writer",
    "health",
    "upload",
    "fanout",
    "broadcaster",
    "scaling",
    "profile",
)

S1 = "1. Spreadsheet work, 100,000 x 10 xlsx"
S2 = "2. Event-loop health (GET /health every 20 ms)"
S3 = "3. WebSocket fan-out"
S4 = "4. Upload of a ~100 MB csv"
S5 = "5. Scaling: chats running the 100k workflow at once"


@contextlib.contextmanager
def phase(results: Results, name: str) -> Iterator[None]:
    log.info("phase %s ...", name)
    started = time.perf_counter()
    try:
        yield
    except Exception as exc:  # one broken part must not hide the others' figures
        log.exception("phase %s failed", name)
        results.skipped.append(f"{name}: failed: {type(exc).__name__}: {str(exc)[:300]}")
    finally:
        results.phases_s[name] = round(time.perf_counter() - started, 1)
        log.info("phase %s done in %.0f s", name, results.phases_s[name])


# --- 1 + 2 ------------------------------------------------------------------------------------


def run_writer(res: Results, xlsx: Path, work: Path) -> None:
    """The optional rust xlsx engine: its floor against xlsxwriter's, and (b) on a server set
    to it, each round back to back."""
    settings = {"CHATFLOW_XLSX_WRITER": RUST_ENGINE}
    with (
        run_server(work / "data-rust", work / "server-rust.log", settings) as server,
        httpx.Client(base_url=server.url, timeout=None) as client,
    ):
        chat = create_chat(client, "bench: rust writer")
        upload_file(client, chat, xlsx, INPUT)
        spreadsheet.through_api(client, chat, spreadsheet.EXTRACT_STEPS, INPUT)  # warm-up
        rows: set[int] = set()
        for rep in range(RUN.reps):
            log.info("writer round %d/%d", rep + 1, RUN.reps)
            a = spreadsheet.floor_project(xlsx, work)
            a_rust = spreadsheet.floor_project(xlsx, work, "rustpy-xlsxwriter")
            b_rust = spreadsheet.through_api(client, chat, spreadsheet.EXTRACT_STEPS, INPUT)
            rows |= {a.rows_out, a_rust.rows_out, b_rust.rows_out}
            res.add("w_a", "(a) floor, xlsxwriter (this round)", "s", a.seconds, S1)
            res.add("w_a_write", "    of which the write, xlsxwriter", "s", a.detail["write"], S1)
            res.add("w_ar", "(a_rust) floor, rustpy-xlsxwriter engine", "s", a_rust.seconds, S1)
            res.add(
                "w_ar_write",
                "    of which the write, rustpy-xlsxwriter",
                "s",
                a_rust.detail["write"],
                S1,
            )
            res.add(
                "w_br",
                "(b_rust) extract workflow via HTTP, server on rustpy-xlsxwriter",
                "s",
                b_rust.seconds,
                S1,
            )
            res.add(
                "w_br_step",
                "    (b_rust) of which the step inside the server",
                "s",
                b_rust.detail["steps_total"],
                S1,
            )
    res.details["writer_rows_out"] = sorted(rows)
    res.ratio("ar/a", "a_rust/a: floor, rust engine vs xlsxwriter", "w_ar", "w_a", S1)
    res.ratio("ar/a write", "write only: rust engine vs xlsxwriter", "w_ar_write", "w_a_write", S1)
    res.ratio("br/ar", "b_rust/a_rust: service vs floor, rust engine", "w_br", "w_ar", S1)


def run_spreadsheet(res: Results, client: httpx.Client, xlsx: Path, work: Path) -> None:
    chat = create_chat(client, "bench: spreadsheet")
    upload_file(client, chat, xlsx, INPUT)
    catalogue = operations(client)
    missing = spreadsheet.missing_operations(catalogue, spreadsheet.CHAIN_STEPS)
    chain_ok = not missing
    if missing:
        res.skipped.append(f"(c) 5-step chain: operation {missing[0]} not registered")
    else:
        problem = dry_run(client, chat, spreadsheet.CHAIN_STEPS, INPUT)
        if problem:
            chain_ok = False
            res.skipped.append(f"(c) 5-step chain: refused by the server's dry run: {problem}")
    spreadsheet.through_api(client, chat, spreadsheet.EXTRACT_STEPS, INPUT)  # warm-up
    runs: dict[str, list[dict[str, Any]]] = {}

    def keep(name: str, timed: spreadsheet.Timed) -> None:
        runs.setdefault(name, []).append(
            {"seconds": timed.seconds, "rows_out": timed.rows_out, **timed.detail}
        )

    for rep in range(RUN.reps):
        log.info("spreadsheet round %d/%d", rep + 1, RUN.reps)
        a = spreadsheet.floor_project(xlsx, work)
        keep("a_project", a)
        res.add("a", "(a) floor: read_table + extract + write_xlsx, in process", "s", a.seconds, S1)
        res.add("a_read", "    (a) of which read_table", "s", a.detail["read"], S1)
        res.add("a_write", "    (a) of which write_xlsx", "s", a.detail["write"], S1)
        plain = spreadsheet.floor_plain(xlsx, work)
        keep("a_plain", plain)
        res.add(
            "a_plain", "(a') floor: plain fastexcel + polars + xlsxwriter", "s", plain.seconds, S1
        )
        b = spreadsheet.through_api(client, chat, spreadsheet.EXTRACT_STEPS, INPUT)
        keep("b", b)
        res.add("b", "(b) extract-columns workflow via HTTP, ?wait=true", "s", b.seconds, S1)
        res.add(
            "b_step",
            "    (b) of which the step inside the server",
            "s",
            b.detail["steps_total"],
            S1,
        )
        if chain_ok:
            a_chain = spreadsheet.floor_chain(xlsx, work)
            keep("a_chain", a_chain)
            res.add(
                "a_chain",
                "(a_c) chain floor: read_table + polars + write_xlsx",
                "s",
                a_chain.seconds,
                S1,
            )
            c = spreadsheet.through_api(client, chat, spreadsheet.CHAIN_STEPS, INPUT)
            keep("c", c)
            res.add("c", "(c) 5-step chain via HTTP, ?wait=true", "s", c.seconds, S1)
        d = spreadsheet.naive_openpyxl(xlsx, work)
        keep("d", d)
        res.add("d", "(d) naive: openpyxl read_only + write_only", "s", d.seconds, S1)
    res.details["spreadsheet_runs"] = runs
    res.ratio("b/a", "b/a: service vs floor (project reader/writer)", "b", "a", S1)
    res.ratio("b/a_plain", "b/a': service vs plain fastexcel+xlsxwriter", "b", "a_plain", S1)
    res.ratio("a/a_plain", "a/a': project reader+writer vs plain libraries", "a", "a_plain", S1)
    if chain_ok:
        res.ratio("c/a_chain", "c/a_c: 5-step chain vs its floor", "c", "a_chain", S1)
        res.ratio("c/a", "c/a: 5-step chain vs the extract floor", "c", "a", S1)
    res.ratio("d/b", "d/b: naive openpyxl vs service", "d", "b", S1)
    rows = {name: {r["rows_out"] for r in values} for name, values in runs.items()}
    res.details["rows_out"] = {name: sorted(v) for name, v in rows.items()}
    extract_rows = rows.get("a_project", set()) | rows.get("b", set()) | rows.get("d", set())
    if len(extract_rows) != 1:
        res.notes.append(f"(a), (b), (d) produced different row counts: {sorted(extract_rows)}")
    else:
        res.notes.append(
            f"(a), (a'), (b), (d) each write the same {extract_rows.pop():,} distinct "
            f"(customer_id, postal_code, city) rows x 3 columns from {ROWS:,} x 10."
        )
    if chain_ok:
        chain_rows = rows.get("a_chain", set()) | rows.get("c", set())
        if len(chain_rows) == 1:
            res.notes.append(
                f"(c) and its floor each write the same {chain_rows.pop():,} rows x 11 columns "
                "(filter status = shipped, de-duplicate on customer_id+product_code, sort "
                "by postal_code as text, add a row-number column, convert to xlsx)."
            )
        else:
            res.notes.append(f"(c) and its floor wrote different row counts: {chain_rows}")


def run_health(res: Results, client: httpx.Client, server: Server) -> None:
    chat = create_chat(client, "bench: health")
    upload_file(client, chat, Path(res.details["xlsx_path"]), INPUT)
    samples = []
    for rep in range(RUN.reps):
        log.info("health round %d/%d", rep + 1, RUN.reps)
        with HealthPoller(server.url) as idle:
            time.sleep(2.0)
        res.add("health_idle_p99", "idle server: health p99", "ms", idle.summary()["p99_ms"], S2)
        with HealthPoller(server.url) as poller:
            b = spreadsheet.through_api(client, chat, spreadsheet.EXTRACT_STEPS, INPUT)
        summary = poller.summary()
        samples.append({"idle": idle.summary(), "during_b": summary, "b_s": b.seconds})
        res.add("health_p50", "while (b) runs: health p50", "ms", summary["p50_ms"], S2)
        res.add("health_p99", "while (b) runs: health p99", "ms", summary["p99_ms"], S2)
        res.add("health_max", "while (b) runs: health max", "ms", summary["max_ms"], S2)
        res.add("b_polled", "(b) with the poller running", "s", b.seconds, S2)
    res.details["health"] = samples


def run_loop_lag(res: Results, xlsx: Path, work: Path) -> None:
    labels = {
        "read_table": "in process, read_table in a thread: worst loop stall",
        "fastexcel load_sheet": "in process, fastexcel load_sheet alone: worst loop stall",
        "fastexcel load_sheet + to_polars": "in process, load_sheet + to_polars: worst loop stall",
        "write_xlsx": "in process, write_xlsx (60k x 3) in a thread: worst loop stall",
        "read via worker": "in process, read in a worker process: worst loop stall",
        "write via worker": "in process, write in a worker process: worst loop stall",
    }
    details = []
    for rep in range(RUN.reps):
        log.info("loop-lag round %d/%d", rep + 1, RUN.reps)
        stages = loop_lag_stages(xlsx, work)
        details.append(stages)
        for i, (name, label) in enumerate(labels.items()):
            res.add(f"lag{i}", label, "ms", stages[name]["max_ms"], S2)
    res.details["loop_lag_stages"] = details


# --- 3 ----------------------------------------------------------------------------------------


def run_fanout(res: Results, work: Path) -> None:
    """Over the wire, from a publish server (the real app publishing on its own loop)."""
    details: list[dict[str, Any]] = []
    server_log = work / "publish-server.log"

    def measure(
        client: httpx.Client,
        server: Server,
        subscribers: int,
        events: int,
        rate: float | None,
        batch: bool,
    ) -> dict[str, Any]:
        chat = create_chat(client, f"bench: fan-out {subscribers}")
        try:
            result = fanout.over_websockets(
                base_url=server.url,
                ws_url=server.ws_url,
                server_pid=server.pid,
                chat_id=chat,
                subscribers=subscribers,
                events=events,
                publishers=WS_PUBLISHERS,
                rate=rate,
                batch=batch,
                log_path=work / "fanout-client.log",
            )
        finally:
            delete_chat(client, chat)
        details.append(result)
        mode = "batched" if batch else "per-event"
        if not result["complete"]:
            res.notes.append(
                f"fan-out ({mode}) to {subscribers} subscribers incomplete: lost {result['lost']}, "
                f"order errors {result['order_errors']}, timed out {result['timed_out']}, "
                f"errors {result['errors']}"
            )
        if result["reconnects"]:
            res.notes.append(
                f"fan-out ({mode}) to {subscribers} subscribers: {result['reconnects']} reconnects "
                "after 1013 (subscriber fell 1000 events behind), caught up with ?since="
            )
        return result

    def add_fast(key: str, label: str, r: dict[str, Any]) -> None:
        res.add(
            f"{key}_delivered", f"{label}: delivered events/s", "ev/s", r["delivered_per_s"], S3
        )
        res.add(f"{key}_publish", f"    {label}: events published/s", "ev/s", r["publish_rate"], S3)
        res.add(f"{key}_p50", f"    {label}: latency p50", "ms", r["latency"]["p50_ms"], S3)
        res.add(f"{key}_p99", f"    {label}: latency p99", "ms", r["latency"]["p99_ms"], S3)

    def add_paced(key: str, label: str, r: dict[str, Any]) -> None:
        res.add(f"{key}_rate", f"{label}: achieved publish rate", "ev/s", r["publish_rate"], S3)
        res.add(f"{key}_p50", f"    {label}: latency p50", "ms", r["latency"]["p50_ms"], S3)
        res.add(f"{key}_p99", f"    {label}: latency p99", "ms", r["latency"]["p99_ms"], S3)

    try:
        with (
            run_publish_server(work / "publish-data", server_log) as server,
            httpx.Client(base_url=server.url, timeout=None) as client,
        ):
            for rep in range(RUN.reps):
                log.info("fan-out round %d/%d", rep + 1, RUN.reps)
                for n in WS_SUBSCRIBERS:
                    r = measure(client, server, n, WS_EVENTS, None, batch=False)
                    add_fast(
                        f"ws{n}", f"WS {n} subscriber{'s' if n > 1 else ''}, frame per event", r
                    )
                r = measure(client, server, 100, WS_EVENTS, None, batch=True)
                add_fast("wsb100", "WS 100 subscribers, ?batch=true (array frames)", r)
                res.add(
                    "wsb100_per_frame",
                    "    same: events per frame (mean)",
                    "ev",
                    r["events_per_frame"],
                    S3,
                )
                r = measure(client, server, 100, PACED_WS_EVENTS, PACED_RATE, batch=False)
                add_paced("ws_paced", "WS 100 subs, paced 200/s, frame per event", r)
                r = measure(client, server, 100, PACED_WS_EVENTS, PACED_RATE, batch=True)
                add_paced("wsb_paced", "WS 100 subs, paced 200/s, ?batch=true", r)
    finally:
        if server_log.exists():
            RESULTS_JSON.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(server_log, RESULTS_JSON.parent / "publish-server.log")
    res.details["fanout_ws"] = details
    res.ratio(
        "ws100/ws1", "WS delivered/s: 100 vs 1 subscriber", "ws100_delivered", "ws1_delivered", S3
    )
    res.ratio(
        "wsb100/ws100",
        "WS delivered/s at 100 subs: batched vs frame per event",
        "wsb100_delivered",
        "ws100_delivered",
        S3,
    )


def run_broadcaster(res: Results, work: Path) -> None:
    details = []
    for rep in range(RUN.reps):
        log.info("broadcaster round %d/%d", rep + 1, RUN.reps)
        sqlite = fanout.broadcaster_alone("sqlite", work, events=BC_EVENTS)
        memory = fanout.broadcaster_alone("memory", work, events=BC_EVENTS)
        paced = fanout.broadcaster_alone("sqlite", work, events=BC_PACED_EVENTS, rate=PACED_RATE)
        hop = fanout.broadcaster_alone("sqlite-one-hop", work, events=BC_EVENTS)
        hop_paced = fanout.broadcaster_alone(
            "sqlite-one-hop", work, events=BC_PACED_EVENTS, rate=PACED_RATE
        )
        paced_mem = fanout.broadcaster_alone(
            "memory", work, events=BC_PACED_EVENTS // 2, rate=PACED_RATE
        )
        details.append(
            {
                "sqlite": sqlite,
                "memory": memory,
                "paced": paced,
                "paced_memory": paced_mem,
                "one_hop": hop,
                "one_hop_paced": hop_paced,
            }
        )
        for run in (sqlite, memory, paced, paced_mem, hop, hop_paced):
            if not run["complete"]:
                res.notes.append(f"in-process broadcaster run incomplete: {run}")
        res.add(
            "bc_delivered",
            "in-process broadcaster, SQLite store, 100 subs: delivered/s",
            "ev/s",
            sqlite["delivered_per_s"],
            S3,
        )
        res.add(
            "bc_publish",
            "    same: events stored/s (16 publishers)",
            "ev/s",
            sqlite["publish_rate"],
            S3,
        )
        res.add("bc_p99", "    same: latency p99", "ms", sqlite["latency"]["p99_ms"], S3)
        res.add(
            "bcm_delivered",
            "in-process broadcaster, in-memory store: delivered/s",
            "ev/s",
            memory["delivered_per_s"],
            S3,
        )
        res.add(
            "bc_paced_p50",
            "in-process, SQLite store, paced 200/s to 100 subs: p50",
            "ms",
            paced["latency"]["p50_ms"],
            S3,
        )
        res.add(
            "bc_paced_p99",
            "in-process, SQLite store, paced 200/s to 100 subs: p99",
            "ms",
            paced["latency"]["p99_ms"],
            S3,
        )
        res.add(
            "bcm_paced_p99",
            "in-process, in-memory store, paced 200/s to 100 subs: p99",
            "ms",
            paced_mem["latency"]["p99_ms"],
            S3,
        )
        res.add(
            "bc1_delivered",
            "prototype one-hop sqlite3 store (not the service's): delivered/s",
            "ev/s",
            hop["delivered_per_s"],
            S3,
        )
        res.add(
            "bc1_paced_p99",
            "prototype one-hop store, paced 200/s to 100 subs: p99",
            "ms",
            hop_paced["latency"]["p99_ms"],
            S3,
        )
    res.details["broadcaster"] = details
    res.ratio(
        "bc_paced/bc1_paced",
        "paced p99: real store vs one-hop prototype",
        "bc_paced_p99",
        "bc1_paced_p99",
        S3,
    )
    res.ratio(
        "bcm/bc",
        "broadcaster delivered/s: memory vs SQLite store",
        "bcm_delivered",
        "bc_delivered",
        S3,
    )
    if "ws100_delivered" in res.figures:
        res.ratio(
            "bc/ws100",
            "delivered/s at 100 subs: in-process vs over the wire",
            "bc_delivered",
            "ws100_delivered",
            S3,
        )


# --- 4 ----------------------------------------------------------------------------------------


def run_upload(res: Results, client: httpx.Client, server: Server, csv: Path, work: Path) -> None:
    chat = create_chat(client, "bench: upload")
    small = work / "warmup.csv"
    small.write_text("a,b\n1,2\n", encoding="utf-8")
    upload_file(client, chat, small)  # first-upload costs (imports, directories) not counted
    details = []
    for rep in range(RUN.reps):
        log.info("upload round %d/%d", rep + 1, RUN.reps)
        up = upload.stream_upload(client, chat, csv, server.pid)
        if up["filename"]:
            upload.delete_file(client, chat, up["filename"])
        copy = upload.plain_copy(csv, work)
        details.append({"upload": up, "copy": copy})
        if up["error"]:
            res.notes.append(f"upload {rep + 1} was refused after streaming: {up['error']}")
        res.add(
            "up_stream_mbs",
            "upload: streaming throughput (until the last byte is sent)",
            "MB/s",
            up["mb_per_s_streaming"],
            S4,
        )
        res.add(
            "up_total_mbs",
            "upload: throughput until the 201 (incl. inspection)",
            "MB/s",
            up["mb_per_s_total"],
            S4,
        )
        res.add("up_total_s", "upload: time until the 201", "s", up["total_s"], S4)
        res.add(
            "up_inspect_s",
            "    of which the inspection child process (psutil, 50 ms)",
            "s",
            up["inspection_child_s"],
            S4,
        )
        res.add(
            "up_rss", "upload: server RSS growth (peak - before)", "MB", up["rss_growth_mb"], S4
        )
        res.add("copy_mbs", "plain shutil.copyfile of the same file", "MB/s", copy["mb_per_s"], S4)
    res.details["upload"] = details
    res.notes.append(f"upload file: {csv.stat().st_size:,} bytes of csv, 10 columns.")
    res.ratio(
        "copy/up_stream", "copy vs upload streaming throughput", "copy_mbs", "up_stream_mbs", S4
    )
    res.ratio(
        "copy/up_total",
        "copy vs upload throughput incl. inspection",
        "copy_mbs",
        "up_total_mbs",
        S4,
    )


# --- 5 ----------------------------------------------------------------------------------------


def run_scaling(res: Results, client: httpx.Client, server: Server, xlsx: Path) -> None:
    chats = [create_chat(client, f"bench: scaling {i}") for i in range(max(SCALING_CHATS))]

    def put(chat_id: str) -> float:
        with httpx.Client(base_url=server.url, timeout=None) as own:
            started = time.perf_counter()
            upload_file(own, chat_id, xlsx, INPUT)
            return time.perf_counter() - started

    with ThreadPoolExecutor(4) as pool:
        uploads = list(pool.map(put, chats))
    res.details["scaling_uploads_s"] = uploads
    details = []
    for rep in range(RUN.reps):
        log.info("scaling round %d/%d", rep + 1, RUN.reps)
        for n in SCALING_CHATS:
            r = scaling.concurrent_runs(server.url, chats[:n], INPUT)
            details.append(r)
            res.add(
                f"sc{n}_runs",
                f"{n} chat{'s' if n > 1 else ''} at once: runs/min",
                "runs/min",
                r["runs_per_min"],
                S5,
            )
            res.add(f"sc{n}_rows", f"    {n} at once: input rows/s", "rows/s", r["rows_per_s"], S5)
            res.add(f"sc{n}_wall", f"    {n} at once: wall time for all", "s", r["wall_s"], S5)
            res.add(f"sc{n}_p99", f"    {n} at once: health p99", "ms", r["health"]["p99_ms"], S5)
    res.details["scaling"] = details
    for n in SCALING_CHATS[1:]:
        res.ratio(f"sc{n}/sc1", f"throughput: {n} chats vs 1", f"sc{n}_runs", "sc1_runs", S5)


# --- main -------------------------------------------------------------------------------------


def _targets() -> list[Target]:
    return [
        Target("b/a", "<=", 1.3, "b/a (service vs floor)"),
        Target("c/a_chain", "<=", 1.6, "c/a (5-step chain vs its floor)"),
        Target("d/b", ">=", 4, "d/b (naive openpyxl vs service)"),
        Target("health_p99", "<", 50, "health p99 while (b) runs, ms"),
        Target("bc_delivered", ">=", 50_000, "delivered ev/s, 100 subs, in-process broadcaster"),
        Target(
            "ws100_delivered", ">=", 50_000, "delivered ev/s, 100 subs, WebSockets, frame per event"
        ),
        Target(
            "wsb100_delivered", ">=", 50_000, "delivered ev/s, 100 subs, WebSockets, ?batch=true"
        ),
        Target("ws_paced_p99", "<", 20, "paced 200/s, 100 subs, WS frame per event: p99 ms"),
        Target("wsb_paced_p99", "<", 20, "paced 200/s, 100 subs, WS ?batch=true: p99 ms"),
        Target("bc_paced_p99", "<", 20, "paced 200/s, 100 subs, in-process: p99 ms"),
        Target("up_rss", "<", 20, "upload: server RSS growth, MB"),
    ]


def _repetitions_note() -> str:
    return (
        f"every figure is the median of {RUN.reps} repetitions (min and max beside it); ratios "
        f"pair repetition i with repetition i of the same round. The spreadsheet round runs "
        f"a, a', b, a_c, c, d back to back after one unmeasured (b) warm-up. Over the wire "
        f"the publish server (`benchmarks/publish_server.py`: the real app plus a bench-only "
        f"route) publishes {WS_EVENTS:,} events per repetition through `events.emit` and the "
        f"real broadcaster and store, from {WS_PUBLISHERS} concurrent publishers on its own "
        f"loop, to 1, 10 and 100 subscribers with one frame per event and to 100 with "
        f"`?batch=true`; the paced runs publish {PACED_WS_EVENTS:,} at {PACED_RATE:.0f}/s in "
        f"both modes. The in-process broadcaster publishes {BC_EVENTS:,} events to 100 "
        f"subscriptions per repetition (16 concurrent publishers), paced: {BC_PACED_EVENTS:,} "
        f"at {PACED_RATE:.0f}/s ({BC_PACED_EVENTS // 2} with the in-memory store); the one-hop "
        f"store prototype runs the same two. Scaling runs 1, 4 and 16 concurrent runs per "
        f"repetition, the naive openpyxl (d) {RUN.reps} times like everything else."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--only", help=f"comma-separated phases of: {', '.join(PHASES)}")
    parser.add_argument(
        "--reps", type=int, default=REPS, help=f"repetitions (default {REPS}; fewer: no doc)"
    )
    parser.add_argument(
        "--render",
        action="store_true",
        help="only rewrite the doc and plot from benchmarks/results/latest.json",
    )
    args = parser.parse_args(argv)
    if args.render:
        rendered = report.load_json(RESULTS_JSON, _targets())
        report.write_doc(DOC, rendered)
        report.write_plot(PLOT, rendered)
        sys.stdout.write(report.text_table(rendered))
        return 0
    RUN.reps = max(1, args.reps)
    only = set(args.only.split(",")) if args.only else set(PHASES)
    unknown = only - set(PHASES)
    if unknown:
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s bench: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # unwind: the server and client processes are stopped

    signal.signal(signal.SIGTERM, on_term)
    started = time.perf_counter()
    res = Results(targets=_targets())
    res.meta = {"started": report.now_iso(), "machine": report.machine(), "phases": sorted(only)}
    with tempfile.TemporaryDirectory(prefix="chatflow-bench-") as tmp:
        work = Path(tmp)
        with phase(res, "data"):
            xlsx = write_orders_xlsx(work / INPUT)
            csv = write_big_csv(work / "big.csv") if "upload" in only else work / "none"
        res.details["xlsx_path"] = str(xlsx)
        res.details["xlsx_bytes"] = xlsx.stat().st_size
        server_phases: list[tuple[str, Callable[[httpx.Client, Server], None]]] = [
            ("spreadsheet", lambda c, s: run_spreadsheet(res, c, xlsx, work)),
            ("writer", lambda c, s: run_writer(res, xlsx, work)),
            ("health", lambda c, s: run_health(res, c, s)),
            ("upload", lambda c, s: run_upload(res, c, s, csv, work)),
            ("scaling", lambda c, s: run_scaling(res, c, s, xlsx)),
        ]
        wanted = [(name, fn) for name, fn in server_phases if name in only]
        if wanted:
            server_log = work / "server.log"
            try:
                with (
                    run_server(work / "data", server_log) as server,
                    httpx.Client(base_url=server.url, timeout=None) as client,
                ):
                    for name, fn in wanted:
                        with phase(res, name):
                            fn(client, server)
            finally:
                if server_log.exists():
                    RESULTS_JSON.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(server_log, RESULTS_JSON.parent / "server.log")
        if "fanout" in only:
            with phase(res, "fanout"):
                run_fanout(res, work)
        if "broadcaster" in only:
            with phase(res, "broadcaster"):
                run_broadcaster(res, work)
        if "health" in only:
            with phase(res, "loop-lag"):
                run_loop_lag(res, xlsx, work)
        if "profile" in only:
            with phase(res, "profile"):
                prof = profile_extract(
                    xlsx, work / "profile", RESULTS_JSON.parent / "profile_b.txt"
                )
                res.details["profile_b"] = prof
    res.finish()
    duration = time.perf_counter() - started
    res.meta.update(
        finished=report.now_iso(),
        duration_s=round(duration, 1),
        load_average_at_end=[round(x, 2) for x in os.getloadavg()],
        repetitions_note=_repetitions_note(),
    )
    report.write_json(RESULTS_JSON, res)
    sys.stdout.write(report.text_table(res))
    if only == set(PHASES) and RUN.reps >= 3:
        DOC.parent.mkdir(parents=True, exist_ok=True)
        report.write_doc(DOC, res)
        report.write_plot(PLOT, res)
        sys.stdout.write(f"\nwrote {RESULTS_JSON}, {DOC} and {PLOT}\n")
    else:
        sys.stdout.write(f"\nwrote {RESULTS_JSON} (partial run: the doc is left alone)\n")
    sys.stdout.write(f"make bench took {duration:.0f} s\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
