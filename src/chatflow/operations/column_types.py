"""A column's type, why a text column is text, and how to read a column as numbers.

Columns are typed when read (``spreadsheets.cell_types``: numbers, booleans, dates, text), so
a column's type is its dtype's name: ``integer``, ``float``, ``boolean``, ``date``,
``datetime``, ``time``, ``text``, or ``empty`` when it has no values at all.

A text column may hold values that read as other kinds, because its file mixed kinds of cells
(an xlsx column of numbers with a "n/a") or because csv had no single reading for it.
``text_value_kinds`` counts them, so a user sees why the column is text; ``excel/convert-types``
converts such a column on request.

``ColumnFacts.numeric_expr`` is the catalogue's lenient rule for numeric aggregations over text
columns: a value that is not a number becomes null, so sum, mean, min and max ignore it.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from chatflow.operations.values import as_integer, as_number
from chatflow.spreadsheets.cell_types import cell_kind

# What a text value reads as, tried in this order (the forms a mixed column's cells take).
_VALUE_KINDS = (
    ("number", r"^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:e[+-][0-9]+)?$"),
    ("code", r"^[0-9]+$"),  # digits with a leading zero: 01234
    ("boolean", r"^(?:true|false|TRUE|FALSE|True|False)$"),
    ("date", r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[ T][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?)?$"),
)


def infer_types(df: pl.DataFrame, columns: list[str] | None = None) -> dict[str, str]:
    """The type of each column (see the module docstring)."""
    names = list(df.columns) if columns is None else columns
    if not names:
        return {}
    nulls = df.select(pl.col(c).null_count() for c in names).row(0)
    return {
        name: "empty" if df.height and n == df.height else cell_kind(df.schema[name])
        for name, n in zip(names, nulls, strict=True)
    }


def text_value_kinds(df: pl.DataFrame, columns: list[str]) -> dict[str, dict[str, int]]:
    """For each text column: how many of its values read as number, boolean, date or text.

    Only columns with values of more than one kind are listed: those are why a column that
    looks numeric is text.  Digits with a leading zero are codes; a column of codes and
    numbers (postal codes, some without a leading zero) is a plain text column.
    """
    text = [c for c in columns if df.schema[c] == pl.String]
    if not text:
        return {}
    exprs = []
    for i, name in enumerate(text):
        col = pl.col(name)
        seen = pl.lit(False)
        for kind, pattern in _VALUE_KINDS:
            hit = col.str.contains(pattern) & ~seen
            exprs.append(hit.sum().alias(f"{i}:{kind}"))
            seen = seen | col.str.contains(pattern)
        exprs.append((col.is_not_null() & ~seen).sum().alias(f"{i}:text"))
    counts = df.select(exprs).row(0, named=True)
    found = {}
    for i, name in enumerate(text):
        kinds = {k: int(counts[f"{i}:{k}"]) for k in (*(k for k, _ in _VALUE_KINDS), "text")}
        kinds = {k: n for k, n in kinds.items() if n}
        if len(kinds) > 1 and not kinds.keys() <= {"number", "code"}:  # codes, some 0-led
            found[name] = kinds
    return found


@dataclass(frozen=True)
class ColumnFacts:
    """A column's inferred type and how to read it as numbers."""

    name: str
    inferred_type: str
    whole: bool  # every value that is a number is a whole number fitting in Int64
    is_text: bool = True  # a String column (else typed by an earlier step)

    @property
    def numeric(self) -> bool:
        return self.inferred_type in ("integer", "float")

    def numeric_expr(self) -> pl.Expr:
        """The column as numbers: Int64 when every number in it is whole, else Float64;
        values that are not numbers become null."""
        col = pl.col(self.name)
        if not self.is_text:
            if self.inferred_type not in ("integer", "float", "boolean"):
                return as_number(col)  # dates and the like: no numbers
            return col.cast(pl.Int64 if self.whole else pl.Float64, strict=False)
        return as_integer(col) if self.whole else as_number(col)


def column_facts(
    df: pl.DataFrame, columns: list[str], types: dict[str, str] | None = None
) -> dict[str, ColumnFacts]:
    """Types (``types`` if already known) and number facts of ``columns``, vectorised."""
    types = {
        **infer_types(df, [c for c in columns if types is None or c not in types]),
        **(types or {}),
    }
    probes: list[pl.Expr] = []
    for i, name in enumerate(columns):
        col = pl.col(name)
        if df.schema[name] != pl.String:
            continue
        if types[name] == "integer":  # whole unless some value overflows Int64
            probes.append((as_integer(col).null_count() == col.null_count()).alias(str(i)))
        elif types[name] not in ("float", "empty"):  # a number that is not whole, anywhere?
            probes.append(
                (as_number(col).is_not_null() & as_integer(col).is_null())
                .any()
                .not_()
                .alias(str(i))
            )
    whole = df.select(probes).row(0, named=True) if probes else {}
    facts = {}
    for i, name in enumerate(columns):
        kind = types[name]
        if df.schema[name] != pl.String:
            facts[name] = ColumnFacts(name, kind, kind in ("integer", "boolean"), is_text=False)
        else:
            facts[name] = ColumnFacts(name, kind, bool(whole.get(str(i), kind == "empty")))
    return facts
