"""The workflows measured, each as the service's steps and as the plain libraries do it, and the
naive ways a user would write the seed workflow: (d) openpyxl, (e) pandas with openpyxl."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastexcel
import openpyxl
import polars as pl
import xlsxwriter

from chatflow.settings import Settings
from chatflow.spreadsheets.writing import XlsxEngine, check_xlsx_engine

SEED_COLUMNS = ["customer_id", "postal_code", "city"]  # duplicates removed: ~60% of the rows
_GROUP = {
    "by": ["city"],
    "aggregations": [
        {"column": "quantity", "fn": "sum", "as": "quantity"},
        {"column": "unit_price", "fn": "mean", "as": "mean_price"},
        {"fn": "count", "as": "orders"},
    ],
}
_AT_LEAST_250 = {"conditions": [{"column": "quantity", "op": "ge", "value": 250}]}
STEPS: dict[str, list[dict[str, Any]]] = {
    "seed": [
        {
            "operation": "excel/extract-columns-to-file",
            "arguments": {"columns": SEED_COLUMNS, "remove_duplicates": True},
        }
    ],
    "group": [
        {"operation": "excel/group-aggregate", "arguments": _GROUP},
        {"operation": "excel/convert", "arguments": {"format": "xlsx"}},
    ],
    "filter": [
        {"operation": "excel/filter-rows", "arguments": _AT_LEAST_250},
        {"operation": "excel/convert", "arguments": {"format": "csv"}},
    ],
}


@functools.cache
def default_engine() -> XlsxEngine:
    """The engine a server with default settings writes xlsx with, its fallback included."""
    # The field's default, not Settings(): the bench's servers get no CHATFLOW_* variable.
    return check_xlsx_engine(Settings.model_fields["xlsx_writer"].default)


def read_plain(path: Path) -> pl.DataFrame:
    """polars' ``read_csv``, or fastexcel with its own types."""
    if path.suffix == ".csv":
        return pl.read_csv(path)
    return fastexcel.read_excel(path).load_sheet(0).to_polars()


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
    import rustpy_xlsxwriter  # only when it is the engine (check_xlsx_engine falls back)

    rustpy_xlsxwriter.write_worksheet(table, str(path), sheet_name="Sheet1")


PLAIN_WRITERS: dict[XlsxEngine, Callable[[pl.DataFrame, Path], None]] = {
    "xlsxwriter": xlsxwriter_plain,
    "rustpy-xlsxwriter": rust_plain,
}


def plain_workflow(name: str, source: Path, out: Path) -> int:
    """The workflow ``name`` of ``STEPS`` with the plain libraries and the default engine's
    library; the rows it wrote."""
    table = read_plain(source)
    if name == "filter":
        kept = table.filter(pl.col("quantity") >= 250)
        kept.write_csv(out / "plain-filter.csv")
        return kept.height
    if name == "seed":
        kept = table.select(SEED_COLUMNS).unique(keep="first", maintain_order=True)
    else:
        kept = table.group_by("city", maintain_order=True).agg(
            pl.col("quantity").sum(), pl.col("unit_price").mean().alias("mean_price"), pl.len()
        )
    PLAIN_WRITERS[default_engine()](kept, out / f"plain-{name}.xlsx")
    return kept.height


def naive_openpyxl(source: Path, out: Path) -> int:
    """(d): openpyxl read-only row by row, a set for duplicates, openpyxl write-only."""
    workbook = openpyxl.load_workbook(source, read_only=True)
    rows = workbook.worksheets[0].iter_rows(values_only=True)
    header = list(next(rows))
    index = [header.index(name) for name in SEED_COLUMNS]
    kept = dict.fromkeys(tuple(row[i] for i in index) for row in rows)  # first seen, in order
    workbook.close()
    written = openpyxl.Workbook(write_only=True)
    sheet = written.create_sheet("Sheet1")
    for row in [SEED_COLUMNS, *kept]:
        sheet.append(row)
    written.save(out / "naive_openpyxl.xlsx")
    return len(kept)


def pandas_openpyxl(source: Path, out: Path) -> int:
    """(e): pandas with openpyxl, the way a user would write the seed workflow."""
    import pandas as pd  # the bench extra: (e) is skipped with a note without it

    kept = pd.read_excel(source, engine="openpyxl")[SEED_COLUMNS].drop_duplicates()
    kept.to_excel(out / "pandas_openpyxl.xlsx", index=False, engine="openpyxl")
    return len(kept)
