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
from pathlib import Path

import httpx

from benchmarks import report
from benchmarks.config import (
    BC_EVENTS,
    BC_PACED_EVENTS,
    DOC,
    INPUT,
    PACED_RATE,
    PACED_WS_EVENTS,
    PHASES,
    PLOT,
    REPS,
    RESULTS_JSON,
    RUN,
    WS_EVENTS,
    WS_PUBLISHERS,
)
from benchmarks.data import write_big_csv, write_orders_xlsx
from benchmarks.phases_events import run_broadcaster, run_fanout
from benchmarks.phases_sheets import (
    run_health,
    run_loop_lag,
    run_scaling,
    run_spreadsheet,
    run_upload,
    run_writer,
)
from benchmarks.profile import profile_extract
from benchmarks.report import Results, Target
from benchmarks.server import Server, run_server

log = logging.getLogger("benchmarks")


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
        f"at {PACED_RATE:.0f}/s ({BC_PACED_EVENTS // 2} with the in-memory store); the sqlite3 "
        f"reference store runs the same two. Scaling runs 1, 4 and 16 concurrent runs per "
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
