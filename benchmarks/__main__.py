"""``make bench``: the figures the README's performance table quotes.

``python -m benchmarks [--quick] [--only PHASES] [--reps N]``. It generates its data in a temp
dir, starts a real server on a free loopback port (``tests.support.chatflow_process``), runs
every phase, prints the figures as markdown tables (median, min, max; ratios pair repetition i
with repetition i) to paste into docs/benchmarks.md, and writes them with every repetition to
benchmarks/results/latest.json.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import logging
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from benchmarks.cluster import run_cluster
from benchmarks.data import INPUT, write_orders_xlsx
from benchmarks.edges import run_csv_read, run_read, run_write
from benchmarks.options import FULL, QUICK, Options
from benchmarks.results import Results, machine
from benchmarks.scaling import run_scaling, scaling_markdown
from benchmarks.service import run_upload
from benchmarks.serving import serve
from benchmarks.sheets import run_spreadsheet

log = logging.getLogger("benchmarks")
RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
ON_SERVER = ("spreadsheet", "upload", "scaling")  # share one server
PHASES = ("read", "csv", "write", *ON_SERVER, "cluster")  # cluster: its own processes


@contextlib.contextmanager
def phase(res: Results, name: str) -> Iterator[None]:
    """One phase; its failure is noted and the others still run."""
    log.info("phase %s ...", name)
    started = time.perf_counter()
    try:
        yield
    except Exception as exc:
        log.exception("phase %s failed", name)
        res.notes.append(f"phase {name} failed: {type(exc).__name__}: {str(exc)[:300]}")
    res.meta.setdefault("phases_s", {})[name] = round(time.perf_counter() - started, 1)


def run(opts: Options, only: set[str], work: Path) -> Results:
    res = Results(meta={"started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")})
    res.meta.update(options=dataclasses.asdict(opts), machine=machine())
    xlsx = write_orders_xlsx(work / INPUT, rows=opts.rows)
    with contextlib.ExitStack() as stack:
        phases: dict[str, Callable[[], None]] = {
            "read": lambda: run_read(res, xlsx, opts),
            "csv": lambda: run_csv_read(res, work, opts),
            "write": lambda: run_write(res, xlsx, opts),
            "cluster": lambda: run_cluster(res, work, xlsx, opts),
        }
        if only & set(ON_SERVER):
            server = stack.enter_context(serve(work, "server"))
            phases["spreadsheet"] = lambda: run_spreadsheet(res, server, xlsx, opts)
            phases["upload"] = lambda: run_upload(res, server, xlsx, opts)
            phases["scaling"] = lambda: run_scaling(res, server, work, opts)
        for name in (n for n in PHASES if n in only):
            with phase(res, name):
                phases[name]()
    res.meta["load_average_at_end"] = machine()["load_average"]
    for server_log in work.glob("*.log"):  # the temp dir goes; the logs are kept beside the JSON
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(server_log, RESULTS.parent / server_log.name)
    return res


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, one repetition")
    parser.add_argument("--only", help=f"comma-separated phases of: {', '.join(PHASES)}")
    parser.add_argument("--reps", type=int, help="repetitions (default 3, --quick 1)")
    args = parser.parse_args(argv)
    only = set(args.only.split(",")) if args.only else set(PHASES)
    if only - set(PHASES):
        parser.error(f"unknown phases: {', '.join(sorted(only - set(PHASES)))}")
    opts = QUICK if args.quick else FULL
    if args.reps:
        opts = dataclasses.replace(opts, reps=max(1, args.reps), read_reps=max(1, args.reps))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s bench: %(message)s")
    for noisy in ("httpx", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # unwinds, so the servers and clients are stopped

    signal.signal(signal.SIGTERM, on_term)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="chatflow-bench-") as tmp:
        res = run(opts, only, Path(tmp))
    res.meta["duration_s"] = round(time.perf_counter() - started, 1)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(dataclasses.asdict(res), indent=1) + "\n", encoding="utf-8")
    sys.stdout.write(res.markdown())
    if "scaling" in only:
        sys.stdout.write(scaling_markdown(res, opts))
    sys.stdout.write(f"\nwrote {RESULTS}; took {res.meta['duration_s']:.0f} s\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
