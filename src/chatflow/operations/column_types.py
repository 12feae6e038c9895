"""A column's type, inferred from its text, and how to read it as numbers.

Every column is read as text (see ``chatflow.spreadsheets.reading``), so the type of a column is
inferred from what its non-empty values look like, in this order:

- ``empty``: no values at all;
- ``boolean``: every value is true/false (any case; xlsx booleans are read as "true"/"false");
- ``integer``: every value is a whole number such as "42", "-7" or "+3" (surrounding spaces
  allowed) without a leading zero, so codes such as "01234" stay ``text``;
- ``float``: every value is a decimal number ("3.5", ".5", "1e3", no leading zero either); no
  thousands separators, currency signs, "inf" or "NaN";
- ``date``: every value is an ISO date "YYYY-MM-DD" (month 01-12, day 01-31), optionally followed
  by " 00:00:00" (which is how xlsx date cells are read);
- ``datetime``: every value is an ISO date with an optional time ("YYYY-MM-DD HH:MM[:SS[.f]]",
  "T" also accepted as the separator);
- ``text``: anything else.

Columns that are already typed (produced by an earlier step, e.g. a sum) are named after their
type.

``ColumnFacts.numeric_expr`` is the catalogue's lenient rule for numeric aggregations over text
columns: a value that is not a number becomes null, so sum, mean, min and max ignore it.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from chatflow.operations.values import as_integer, as_number

SAMPLE_ROWS = 1000  # types are first tried on these rows, then confirmed on every row

_SPACE = r"[ \t]*"
_YMD = r"[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
# (type, pattern every non-empty value must match), in the order they are tried.
_TYPE_PATTERNS = (
    ("boolean", rf"(?i)^{_SPACE}(?:true|false){_SPACE}$"),
    ("integer", rf"^{_SPACE}[+-]?(?:0|[1-9][0-9]*){_SPACE}$"),
    (
        "float",
        rf"^{_SPACE}[+-]?(?:(?:0|[1-9][0-9]*)(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?{_SPACE}$",
    ),
    ("date", rf"^{_YMD}(?: 00:00:00(?:\.0+)?)?$"),
    (
        "datetime",
        rf"^{_YMD}(?:[ T](?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\.[0-9]+)?)?)?$",
    ),
)
_PATTERNS = dict(_TYPE_PATTERNS)


def _dtype_type(dtype: pl.DataType) -> str:
    if dtype.is_integer():
        return "integer"
    if dtype.is_float() or isinstance(dtype, pl.Decimal):
        return "float"
    if dtype == pl.Boolean:
        return "boolean"
    if dtype == pl.Date:
        return "date"
    if isinstance(dtype, pl.Datetime):
        return "datetime"
    if dtype == pl.Null:
        return "empty"
    return "text"


def _all_match(column: str, kind: str) -> pl.Expr:
    col = pl.col(column)
    return (col.is_null() | col.str.contains(_PATTERNS[kind])).all()


def infer_types(df: pl.DataFrame, columns: list[str] | None = None) -> dict[str, str]:
    """Inferred type of each column (see the module docstring).

    Vectorised and cheap for text: every candidate type is tried on the first SAMPLE_ROWS rows
    of all columns at once; only the candidates that survive are confirmed on the whole column.
    """
    names = list(df.columns) if columns is None else columns
    found: dict[str, str] = {}
    text = [c for c in names if df.schema[c] == pl.String]
    for name in names:
        if name not in text:
            found[name] = _dtype_type(df.schema[name])
    if text:
        nulls = df.select(pl.col(c).null_count() for c in text).row(0)
        for name, n in zip(text, nulls, strict=True):
            if n == df.height:
                found[name] = "empty"
        text = [c for c in text if c not in found]
    if text:
        sample = df.head(SAMPLE_ROWS)
        flags = sample.select(
            _all_match(c, kind).alias(f"{i}:{kind}")
            for i, c in enumerate(text)
            for kind, _ in _TYPE_PATTERNS
        ).row(0, named=True)
        pending = {
            c: [kind for kind, _ in _TYPE_PATTERNS if flags[f"{i}:{kind}"]]
            for i, c in enumerate(text)
        }
        while pending:
            for name in [c for c, kinds in pending.items() if not kinds]:
                found[name] = "text"
                del pending[name]
            if not pending:
                break
            trial = list(pending.items())
            confirmed = df.select(
                _all_match(c, kinds[0]).alias(str(i)) for i, (c, kinds) in enumerate(trial)
            ).row(0)
            for (name, kinds), ok in zip(trial, confirmed, strict=True):
                if ok:
                    found[name] = kinds[0]
                    del pending[name]
                else:
                    kinds.pop(0)
    return {name: found[name] for name in names}


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
