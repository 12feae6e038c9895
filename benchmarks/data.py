"""The generated input: N orders x 10 columns, deterministic, as xlsx (and csv for scaling)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from benchmarks.workflows import xlsxwriter_plain
from chatflow.spreadsheets.writing_rust import write_sheets

INPUT = "orders.xlsx"  # the 100k-row workbook's name in the chats


def orders(rows: int) -> pl.DataFrame:
    """``rows`` orders of ~90,000 customers: 8-digit ids and 5-digit postal codes as text with
    leading zeros, cities, names, 6-digit product codes, ints, floats, dates, statuses."""

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


def write_orders_xlsx(path: Path, rows: int) -> Path:
    """The read, write, spreadsheet and upload phases' workbook, written by xlsxwriter."""
    xlsxwriter_plain(orders(rows), path)
    return path


def write_inputs(work: Path, rows: int) -> dict[str, Path]:
    """The scaling phase's inputs: the same orders as csv and as xlsx (our Rust writer)."""
    table = orders(rows)
    paths = {kind: work / f"orders_{rows}.{kind}" for kind in ("csv", "xlsx")}
    table.write_csv(paths["csv"])
    write_sheets({"Orders": table}, paths["xlsx"], None)
    return paths
