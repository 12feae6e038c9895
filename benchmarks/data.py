"""The generated input: the orders xlsx (100,000 x 10), deterministic."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from pathlib import Path

import xlsxwriter

ROWS = 100_000
COLUMNS = [
    "customer_id",  # 8-digit text with leading zeros; ~90,000 distinct, so some repeat
    "postal_code",  # 5-digit text with leading zeros, fixed per customer
    "city",  # one of 60, fixed per customer
    "name",
    "product_code",  # 6-digit text with leading zeros, 5,000 distinct
    "quantity",  # int
    "unit_price",  # float
    "discount",  # float 0..0.3
    "order_date",  # date
    "status",  # one of 5
]
# The three columns the extract workflow keeps; with remove_duplicates about 60k rows remain.
EXTRACT_COLUMNS = ["customer_id", "postal_code", "city"]
INPUT = "orders.xlsx"  # its name in the chats
DISTINCT_CUSTOMERS = 90_000

_CITIES = [f"City {chr(65 + i % 26)}{i:02d}" for i in range(60)]
_FIRST = ["Ana", "Ben", "Cy", "Dee", "Eve", "Finn", "Gus", "Hana", "Ivo", "Jan", "Kai", "Lea"]
_LAST = ["Silva", "Costa", "Meyer", "Novak", "Smith", "Okafor", "Tanaka", "Rossi", "Berg"]
_STATUSES = ["new", "paid", "shipped", "returned", "cancelled"]


@dataclass(frozen=True)
class Customer:
    customer_id: str
    postal_code: str
    city: str
    name: str


def _customers(rng: random.Random) -> list[Customer]:
    ids = rng.sample(range(10**7), DISTINCT_CUSTOMERS)  # 8 digits: many start with 0
    out = []
    for n in ids:
        postal = rng.randrange(500, 99_999)
        out.append(
            Customer(
                customer_id=f"{n:08d}",
                postal_code=f"{postal:05d}",
                city=_CITIES[postal % len(_CITIES)],
                name=f"{rng.choice(_FIRST)} {rng.choice(_LAST)}",
            )
        )
    return out


def write_orders_xlsx(path: Path, rows: int = ROWS, seed: int = 5) -> Path:
    """The 100k x 10 workbook: text with leading zeros, ints, floats, dates, repeated values."""
    rng = random.Random(seed)
    customers = _customers(rng)
    products = [f"{n:06d}" for n in rng.sample(range(10**6), 5_000)]
    start = dt.date(2020, 1, 1)
    workbook = xlsxwriter.Workbook(
        str(path),
        {"constant_memory": True, "strings_to_numbers": False, "strings_to_formulas": False},
    )
    sheet = workbook.add_worksheet("Orders")
    date_format = workbook.add_format({"num_format": "yyyy-mm-dd"})
    for col, name in enumerate(COLUMNS):
        sheet.write_string(0, col, name)
    for row in range(1, rows + 1):
        c = rng.choice(customers)
        sheet.write_string(row, 0, c.customer_id)
        sheet.write_string(row, 1, c.postal_code)
        sheet.write_string(row, 2, c.city)
        sheet.write_string(row, 3, c.name)
        sheet.write_string(row, 4, rng.choice(products))
        sheet.write_number(row, 5, rng.randint(1, 500))
        sheet.write_number(row, 6, round(rng.uniform(0.5, 999.0), 2))
        sheet.write_number(row, 7, round(rng.random() * 0.3, 4))
        sheet.write_datetime(row, 8, start + dt.timedelta(days=rng.randrange(1500)), date_format)
        sheet.write_string(row, 9, rng.choice(_STATUSES))
    workbook.close()
    return path
