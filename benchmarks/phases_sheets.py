"""Phases on the chatflow server: spreadsheet work, the writer, health, upload, scaling."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from benchmarks import scaling, spreadsheet, upload
from benchmarks.config import (
    INPUT,
    RUN,
    S1,
    S2,
    S4,
    S5,
    SCALING_CHATS,
)
from benchmarks.data import ROWS
from benchmarks.loop_health import HealthPoller, loop_lag_stages
from benchmarks.report import Results
from benchmarks.server import (
    Server,
    create_chat,
    dry_run,
    operations,
    run_server,
    upload_file,
)
from chatflow.spreadsheets.writing import RUST_ENGINE

log = logging.getLogger("benchmarks")


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
        res.add(
            "a", "(a_project) read_table + extract + write_xlsx, in process", "s", a.seconds, S1
        )
        res.add("a_read", "    (a) of which read_table", "s", a.detail["read"], S1)
        res.add("a_write", "    (a) of which write_xlsx", "s", a.detail["write"], S1)
        plain = spreadsheet.floor_plain(xlsx, work)
        keep("a_plain", plain)
        res.add(
            "a_plain",
            "(a) floor: fastexcel typed + polars + xlsxwriter typed",
            "s",
            plain.seconds,
            S1,
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
    # The floor (a) is the best libraries used plainly (fastexcel's own types, polars,
    # xlsxwriter writing typed cells); (a_project) is the project's own reader and writer.
    res.ratio(
        "b/a", "b/a: service vs floor (plain fastexcel + polars + xlsxwriter)", "b", "a_plain", S1
    )
    res.ratio(
        "b/a_project", "b/a_project: service vs the project's read_table + write_xlsx", "b", "a", S1
    )
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
