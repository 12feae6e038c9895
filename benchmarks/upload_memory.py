"""What reading an upload costs in memory: the figures behind the per-format cell limits.

``python -m benchmarks.upload_memory [--rows N] [--reps N]`` writes an N x 10 table (ints,
floats, dates and short text; default 1,000,000 rows) as csv and as xlsx, then for each file,
in a fresh process each time, measures what ``read_table`` (a step's read) and the upload
inspection (``inspect_file``, with the inspection child's environment) add on top of the
process's imports: peak RSS and peak address space (what ``RLIMIT_AS`` caps), and bytes per
cell of each.  Prints the medians as a markdown table (settings.py's ``*_BYTES_PER_CELL`` and
docs/security.md quote them).  Not part of ``make bench``: it takes about 3 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

import polars as pl

WIDTH = 10
# Run in the fresh process: imports, then the peaks before and after one read or inspection.
_PROBE = """\
import json, sys
from pathlib import Path
def status():
    fields = {}
    for line in open("/proc/self/status"):
        key, _, value = line.partition(":")
        fields[key] = int(value.split()[0]) * 1024 if value.strip().endswith("kB") else 0
    return fields
mode, kind, path = sys.argv[1], sys.argv[2], Path(sys.argv[3])
if mode == "read":
    from chatflow.spreadsheets.reading import read_table
    # A step's worker has started polars' threads before its limit is set: so does this.
    warm = path.with_name("warm.csv")
    warm.write_text("a\\n1\\n")
    read_table(warm, kind="csv")
else:
    from chatflow.spreadsheets.inspection import inspect_file
    from chatflow.spreadsheets.zip_parts import GateLimits
before = status()
if mode == "read":
    read_table(path, kind=kind)
else:
    inspect_file(path, kind, limits=GateLimits(max_cells=10**12, max_uncompressed_mb=10**6))
after = status()
rss, vm = after["VmHWM"] - before["VmRSS"], after["VmPeak"] - before["VmSize"]
print(json.dumps({"rss": rss, "vm": vm}))
"""
# The inspection child's environment (sandbox._child_env): fewer threads, fewer malloc arenas.
_CHILD_ENV = {"POLARS_MAX_THREADS": "1", "RAYON_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2"}


def table(rows: int) -> pl.DataFrame:
    i = pl.int_range(0, rows, eager=True)
    return pl.select(
        id=i,
        qty=(i * 7919) % 1000,
        price=(i % 997).cast(pl.Float64) * 1.25 + 0.01,
        name=pl.format("customer {}", i % 50_000),
        city=pl.lit("Paris"),
        day=pl.lit(date(2020, 1, 1)) + pl.duration(days=pl.lit(i % 2000)),
        ratio=i.cast(pl.Float64) / 3.0,
        code=pl.format("C{}-{}", i % 97, i % 13),
        amount=(i * 31) % 100_000,
        note=pl.format("note {}", i % 1000),
    )


def write_files(rows: int, directory: Path) -> dict[str, Path]:
    import rustpy_xlsxwriter

    df = table(rows)
    paths = {"csv": directory / "table.csv", "xlsx": directory / "table.xlsx"}
    df.write_csv(paths["csv"])
    rustpy_xlsxwriter.write_worksheets([("Sheet1", df)], str(paths["xlsx"]))
    return paths


def probe(mode: str, kind: str, path: Path) -> dict[str, int]:
    env = {**os.environ, **_CHILD_ENV} if mode == "inspect" else dict(os.environ)
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, mode, kind, str(path)],
        env=env,
        capture_output=True,
        check=True,
        text=True,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.upload_memory")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    cells = args.rows * WIDTH
    out = sys.stdout
    out.write(f"| {args.rows:,} x {WIDTH} | file | peak RSS | B/cell | peak address | B/cell |\n")
    out.write("|---|---|---|---|---|---|\n")
    with tempfile.TemporaryDirectory() as tmp:
        for kind, path in write_files(args.rows, Path(tmp)).items():
            for mode in ("read", "inspect"):
                runs = [probe(mode, kind, path) for _ in range(args.reps)]
                rss = statistics.median(r["rss"] for r in runs)
                vm = statistics.median(r["vm"] for r in runs)
                out.write(
                    f"| {kind} {mode} | {path.stat().st_size / 1e6:.0f} MB "
                    f"| {rss / 2**20:.0f} MiB | {rss / cells:.0f} "
                    f"| {vm / 2**20:.0f} MiB | {vm / cells:.0f} |\n"
                )
                out.flush()


if __name__ == "__main__":
    main()
