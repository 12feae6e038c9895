"""Checks shared by operations (and by run validation before a run starts), and their wording."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import polars as pl

from chatflow.failures import StepFailed
from chatflow.operations.limits import Limits

LISTED = 50  # names a message or result lists: 16,000 column names help nobody


def quoted(columns: Sequence[str]) -> str:
    """'a', 'b' for messages."""
    return ", ".join(f"'{c}'" for c in columns)


def describe(columns: Sequence[str]) -> str:
    """column 'a' / columns 'a', 'b' for messages."""
    return f"column '{columns[0]}'" if len(columns) == 1 else f"columns {quoted(columns)}"


def describe_or(columns: Sequence[str] | None, everything: str) -> str:
    """``describe(columns)``, or ``everything`` when no columns were named."""
    return describe(columns) if columns else everything


def plural(n: int, word: str, many: str | None = None) -> str:
    """'1 row', '3 rows'."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


def column_not_found(missing: Sequence[str], available: Sequence[str]) -> StepFailed:
    """The one error for columns that are not there, naming them and listing what exists."""
    noun = "Column" if len(missing) == 1 else "Columns"
    listed = ", ".join(available[:LISTED]) or "(none)"
    if len(available) > LISTED:
        listed += f", ... ({len(available)} in all)"
    message = f"{noun} {quoted(missing)} not found; available columns: {listed}"
    hints = _near_misses(missing, available)
    if hints:
        message += f" (did you mean {', '.join(repr(h) for h in hints)}?)"
    return StepFailed(
        "column_not_found",
        message,
        details={"missing": list(missing), "available": list(available)},
    )


def _near_misses(missing: Sequence[str], available: Sequence[str]) -> list[str]:
    """Available names equal to a missing one apart from case and surrounding spaces."""
    folded = {a.strip().casefold(): a for a in available}
    return [folded[m.strip().casefold()] for m in missing if m.strip().casefold() in folded]


def require_columns(available: Sequence[str], needed: Iterable[str]) -> None:
    """Raise ``column_not_found`` unless every needed column is available."""
    present = set(available)
    missing = [c for c in dict.fromkeys(needed) if c not in present]
    if missing:
        raise column_not_found(missing, available)


def reject_existing(new: Iterable[str], existing: Iterable[str], *, what: str) -> None:
    """``column_exists`` if a new column name is already taken."""
    present = set(existing)
    taken = [n for n in new if n in present]
    if taken:
        noun = "Column" if len(taken) == 1 else "Columns"
        verb = "exists" if len(taken) == 1 else "exist"
        raise StepFailed(
            "column_exists",
            f"{noun} {quoted(taken)} already {verb}; choose another name for {what}.",
            details={"existing": taken},
        )


def repeated(names: Iterable[str]) -> list[str]:
    """Names listed more than once, sorted."""
    return sorted(n for n, k in Counter(names).items() if k > 1)


def refuse_repeats(names: list[str], what: str = "columns") -> list[str]:
    """Validator body: refuse a list naming something twice ("<what> listed more than once")."""
    twice = repeated(names)
    if twice:
        # An empty ``what`` keeps the bare wording profile-columns has always used.
        raise ValueError(f"{what} listed more than once: {', '.join(twice)}".lstrip())
    return names


def no_repeats(names: list[str]) -> list[str]:
    """Validator body: refuse a list naming a column twice, or naming a blank column."""
    if any(not n.strip() for n in names):
        raise ValueError("column names must not be blank")
    return refuse_repeats(names)


def no_repeats_or_none(names: list[str] | None) -> list[str] | None:
    """Validator body: ``no_repeats`` for an optional list."""
    return None if names is None else no_repeats(names)


def new_name(name: str) -> str:
    """Validator body: a new column name must not be blank or padded (the reader strips)."""
    if not name.strip():
        raise ValueError("a new column name must not be blank")
    if name != name.strip():
        raise ValueError(f"column name {name!r} has surrounding spaces")
    return name


def unique_name(base: str, taken: set[str]) -> str:
    """``base``, or ``base_2``, ``base_3``... whichever is not in ``taken`` (which is updated)."""
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    taken.add(name)
    return name


def column_type_mismatch(column: str, kind: str, reason: str) -> StepFailed:
    """The one error for a column whose type an operation cannot use: names the column and
    its type (``cell_types.cell_kind``: integer, float, boolean, date, datetime, text...)."""
    return StepFailed(
        "column_type_mismatch",
        f"Column '{column}' holds {kind} values; {reason}",
        details={"column": column, "type": kind},
    )


def check_size(estimate: int, limits: Limits, *, doing: str, unit: str = "rows") -> None:
    """``too_many_rows`` before a step builds more than ``limits.max_rows`` rows (or, for a
    step that widens the table, new cells): ``doing`` says what, ``unit`` in what."""
    if estimate <= limits.max_rows:
        return
    raise StepFailed(
        "too_many_rows",
        f"{doing} would make {estimate:,} {unit}; at most {limits.max_rows:,} are allowed "
        "(the server's CHATFLOW_MAX_ROWS setting raises this limit).",
        details={
            "estimate": estimate,
            "unit": unit,
            "max_rows": limits.max_rows,
            "setting": "CHATFLOW_MAX_ROWS",
        },
    )


def join_pairs(left: pl.DataFrame, right: pl.DataFrame, on: Sequence[str]) -> int:
    """Rows an inner join of ``left`` and ``right`` on the ``on`` columns makes, without
    making them: over every key, its left rows times its right rows (empty keys never match).
    """
    keys = list(on)
    counts = [
        table.filter(pl.all_horizontal(pl.col(keys).is_not_null())).group_by(keys).len(name=n)
        for table, n in ((left.select(keys), "__left"), (right.select(keys), "__right"))
    ]
    pairs = counts[0].join(counts[1], on=keys, how="inner")
    product = pl.col("__left").cast(pl.Int64) * pl.col("__right").cast(pl.Int64)
    return int(pairs.select(product.sum()).item() or 0)


def is_dated(dtype: pl.DataType) -> bool:
    """A date or datetime column (a date compares as its midnight)."""
    return dtype == pl.Date or isinstance(dtype, pl.Datetime)
