"""The read and write edges: the project's typed read and its xlsx writer against their
libraries used plainly, on the generated 100k x 10 xlsx, for this tree and for the baseline.

Each tree is timed in a child process (``python -m benchmarks.edges read|write ...``) whose
``chatflow`` comes from that tree's ``src``; the child times the project's call and the plain
library call in turn, alternating which goes first, and prints the seconds as one JSON line, so
each ratio pairs two calls of one process.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fastexcel
import polars as pl
import xlsxwriter

from benchmarks.options import Options
from benchmarks.results import Results
from benchmarks.serving import REPO, Tree, tree_env

if TYPE_CHECKING:  # the child imports chatflow from the tree it measures, so only for the types
    from chatflow.spreadsheets.writing import XlsxEngine

ENGINES: dict[XlsxEngine, str] = {
    "xlsxwriter": "xw",
    "rustpy-xlsxwriter": "rust",
}  # the setting's values, short tags


def xlsxwriter_plain(table: pl.DataFrame, path: Path) -> None:
    """xlsxwriter at its fastest: ``constant_memory``, one typed write call per column's kind."""
    options = {"constant_memory": True, "strings_to_numbers": False, "strings_to_formulas": False}
    workbook = xlsxwriter.Workbook(str(path), options)
    sheet = workbook.add_worksheet("Sheet1")
    date_format = workbook.add_format({"num_format": "yyyy-mm-dd"})
    writers = []
    for col, (name, dtype) in enumerate(table.schema.items()):
        sheet.write_string(0, col, name)
        if dtype.is_numeric():
            writers.append(sheet.write_number)
        elif dtype.is_temporal():
            writers.append(lambda r, c, v: sheet.write_datetime(r, c, v, date_format))
        elif dtype == pl.Boolean:
            writers.append(sheet.write_boolean)
        else:
            writers.append(sheet.write_string)
    for row, values in enumerate(table.iter_rows(), start=1):
        for col, value in enumerate(values):
            if value is not None:
                writers[col](row, col, value)
    workbook.close()


def rust_plain(table: pl.DataFrame, path: Path) -> None:
    """rustpy-xlsxwriter's documented fast path: the polars table handed over as Arrow."""
    import rustpy_xlsxwriter

    rustpy_xlsxwriter.write_worksheet(table, str(path), sheet_name="Sheet1")


def _paired(calls: dict[str, Callable[[], object]], reps: int) -> dict[str, list[float]]:
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


def child_main(argv: list[str]) -> int:
    """The child: ``read|write XLSX OUT_DIR REPS [all]``, timed with this ``chatflow``."""
    from chatflow.settings import Settings
    from chatflow.spreadsheets.reading import read_table
    from chatflow.spreadsheets.writing import write_workbook

    what, xlsx, out, reps = argv[0], Path(argv[1]), Path(argv[2]), int(argv[3])
    calls: dict[str, Callable[[], object]] = {}
    default = Settings().xlsx_writer
    if what == "read":
        calls["plain"] = lambda: fastexcel.read_excel(xlsx).load_sheet(0).to_polars()
        calls["project"] = partial(read_table, xlsx, kind="xlsx")
    else:
        table = read_table(xlsx, kind="xlsx")
        plain = {"xlsxwriter": xlsxwriter_plain, "rustpy-xlsxwriter": rust_plain}
        for engine in ENGINES if argv[4:] == ["all"] else (default,):
            if not importlib.util.find_spec(engine.replace("-", "_")):
                continue  # the optional engine's package is not installed: no figure
            dest = out / f"project-{engine}.xlsx"
            calls[engine] = partial(write_workbook, {"Sheet1": table}, dest, engine=engine)
            calls[f"{engine} plain"] = partial(plain[engine], table, out / f"plain-{engine}.xlsx")
    sys.stdout.write(json.dumps({"default": default, **_paired(calls, reps)}) + "\n")
    return 0


def _child(tree: Tree, *args: str) -> dict[str, Any]:
    """Run the child with ``tree``'s ``chatflow`` (and this tree's ``benchmarks``)."""
    command = [sys.executable, "-m", "benchmarks.edges", *args]
    env = tree_env(tree.root, code=REPO)
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{tree.label}: {' '.join(args[:1])} failed: {done.stderr[-2000:]}")
    return dict(json.loads(done.stdout.splitlines()[-1]))


def run_read(res: Results, trees: list[Tree], xlsx: Path, opts: Options) -> None:
    """``read_table`` vs ``fastexcel.read_excel(p).load_sheet(0).to_polars()``, per tree."""
    for tree in trees:
        got = _child(tree, "read", str(xlsx), str(xlsx.parent), str(opts.read_reps))
        k = tree.key
        for plain, project in zip(got["plain"], got["project"], strict=True):
            res.add(
                f"read_plain{k}", f"plain fastexcel read into polars ({tree.label})", "s", plain
            )
            res.add(f"read{k}", f"read_table ({tree.label})", "s", project)
        res.ratio(
            f"read{k}/plain",
            f"read: read_table vs fastexcel ({tree.label})",
            f"read{k}",
            f"read_plain{k}",
        )


def run_write(res: Results, trees: list[Tree], xlsx: Path, opts: Options) -> None:
    """Each engine through ``write_workbook`` vs its library used plainly, on the read table:
    both engines for this tree, the baseline's default engine for the baseline."""
    for tree in trees:
        extra = ["all"] if not tree.key else []
        got = _child(tree, "write", str(xlsx), str(xlsx.parent), str(opts.reps), *extra)
        k, default = tree.key, got.pop("default")
        for engine in (name for name in ENGINES if name in got):
            tag = f"{ENGINES[engine]}{k}"
            mark = ", the default" if engine == default else ""
            for project, plain in zip(got[engine], got[f"{engine} plain"], strict=True):
                res.add(f"w_{tag}", f"write_workbook, {engine}{mark} ({tree.label})", "s", project)
                res.add(f"wp_{tag}", f"plain {engine} ({tree.label})", "s", plain)
            ratio = "write/plain" if engine == default and not k else f"write_{tag}/plain"
            res.ratio(
                ratio, f"write: {engine}{mark} vs plain ({tree.label})", f"w_{tag}", f"wp_{tag}"
            )


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
