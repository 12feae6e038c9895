"""excel/lookup-join: add columns from another chat file, matched on key columns.

It reads a second chat file, so its ``read`` (``_read_both``) replaces the reading and its
transform takes both tables, and the ``StepContext`` for its limits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import polars as pl
from pydantic import Field, field_validator, model_validator

from chatflow.failures import StepFailed
from chatflow.operations.common import (
    LISTED,
    check_size,
    is_dated,
    refuse_repeats,
    require_columns,
    unique_name,
)
from chatflow.operations.limits import Limits
from chatflow.operations.registry import INPUT_COLUMNS, StepContext
from chatflow.operations.steps import Outcome, TableArgs, operation
from chatflow.operations.values import plain, text_form
from chatflow.spreadsheets.cell_types import cell_kind, cell_text

# --- excel/lookup-join --------------------------------------------------------------------


class LookupJoinArgs(TableArgs):
    """Arguments of excel/lookup-join."""

    right_file: str = Field(
        min_length=1, description="The chat file to look values up in (its latest version)."
    )
    right_sheet: str | None = Field(
        default=None, description="Sheet of right_file if it is an xlsx (default: the first)."
    )
    left_on: str | list[str] = Field(
        description="Key column(s) of the current table. Keys of the same type compare as "
        "that type (numbers as numbers, whole and decimal alike; dates as dates; text exactly, "
        "see normalize_keys); keys of different types (a number and text) compare by their "
        "text form (120 as '120', 3.5 as '3.5', dates ISO), which the result reports as "
        "key_types[].matched_as='text'. Empty keys never match.",
        json_schema_extra=INPUT_COLUMNS,
    )
    right_on: str | list[str] | None = Field(
        default=None,
        description="Key column(s) of right_file, matched in order with left_on (default: the "
        "same names as left_on).",
    )
    how: Literal["left", "inner", "outer", "anti", "semi"] = Field(
        default="left",
        description="left: every current row, with right values where a key matches; inner: "
        "only rows that match; outer: also right rows that match nothing (their key is copied "
        "into the left key columns); semi: current rows that have a match, no new columns; "
        "anti: current rows that have none.",
    )
    take_columns: list[str] | None = Field(
        default=None,
        min_length=1,
        description="Columns of right_file to bring over (default: all but its key columns). "
        "A name the current table already has gets the suffix.",
    )
    suffix: str = Field(
        default="_right", min_length=1, description="Appended to clashing right column names."
    )
    right_duplicates: Literal["keep_all", "first", "error"] = Field(
        default="keep_all",
        description="When a key occurs in several right rows: keep_all repeats the current row "
        "once per match (reported as rows_added_by_duplicates in the result), first uses the "
        "first matching right row (like VLOOKUP), error fails the step (duplicate_keys).",
    )
    normalize_keys: bool = Field(
        default=False,
        description="Compare text keys (and keys compared by their text form) ignoring case "
        "and surrounding spaces (' ABC' matches 'abc').",
    )

    @field_validator("left_on", "right_on")
    @classmethod
    def _keys(cls, keys: str | list[str] | None) -> str | list[str] | None:
        if isinstance(keys, list):
            if not keys:
                raise ValueError("at least one key column is needed")
            refuse_repeats(keys, "key columns")
        return keys

    @field_validator("take_columns")
    @classmethod
    def _take(cls, columns: list[str] | None) -> list[str] | None:
        return None if columns is None else refuse_repeats(columns, "take_columns")

    @model_validator(mode="after")
    def _consistent(self) -> LookupJoinArgs:
        if len(self.left_keys) != len(self.right_keys):
            raise ValueError(
                f"left_on has {len(self.left_keys)} columns but right_on {len(self.right_keys)}"
            )
        if self.how in ("anti", "semi") and self.take_columns is not None:
            raise ValueError(f"how={self.how!r} brings no columns; leave out take_columns")
        return self

    def needed_columns(self) -> list[str]:
        return self.left_keys

    @property
    def left_keys(self) -> list[str]:
        return [self.left_on] if isinstance(self.left_on, str) else list(self.left_on)

    @property
    def right_keys(self) -> list[str]:
        if self.right_on is None:
            return self.left_keys
        return [self.right_on] if isinstance(self.right_on, str) else list(self.right_on)


def _common_numeric(a: pl.DataType, b: pl.DataType) -> pl.DataType:
    if a == b:
        return a
    return pl.Int64() if a.is_integer() and b.is_integer() else pl.Float64()


def _key_pair(
    left: pl.DataFrame, lc: str, right: pl.DataFrame, rc: str, normalize: bool
) -> tuple[pl.Expr, pl.Expr, str]:
    """How one pair of key columns is compared: (left key, right key, what they match as)."""
    ldt, rdt = left.schema[lc], right.schema[rc]
    if ldt.is_numeric() and rdt.is_numeric():
        common = _common_numeric(ldt, rdt)
        return pl.col(lc).cast(common), pl.col(rc).cast(common), "number"
    if ldt == rdt and ldt != pl.String:
        return pl.col(lc), pl.col(rc), cell_kind(ldt)
    if is_dated(ldt) and is_dated(rdt):  # a date is its midnight
        stamp = pl.Datetime("us")
        return pl.col(lc).cast(stamp), pl.col(rc).cast(stamp), "datetime"
    lhs, rhs = text_form(lc, left.schema[lc]), text_form(rc, right.schema[rc])
    if normalize:
        lhs, rhs = (e.str.strip_chars().str.to_lowercase() for e in (lhs, rhs))
    return lhs, rhs, "text"


@dataclass
class _Plan:
    """The two tables with their working columns: keys as compared (``lk``, ``rk``), right
    keys as an outer join copies them (``rv``), and the right columns brought over."""

    lhs: pl.DataFrame
    rhs: pl.DataFrame
    lk: list[str]
    rk: list[str]
    rv: list[str]
    copied: list[pl.Expr]  # each left key in the type it is compared as
    renamed: dict[str, str]
    key_types: list[dict[str, str]]
    reserved: set[str]


def _taken(right: pl.DataFrame, args: LookupJoinArgs) -> list[str]:
    if args.how in ("anti", "semi"):
        take: list[str] = []
    elif args.take_columns is not None:
        take = args.take_columns
    else:
        take = [c for c in right.columns if c not in args.right_keys]
    require_columns(right.columns, take)
    return take


def _plan(left: pl.DataFrame, right: pl.DataFrame, args: LookupJoinArgs) -> _Plan:
    left_keys, right_keys = args.left_keys, args.right_keys
    require_columns(left.columns, left_keys)
    require_columns(right.columns, right_keys)
    take = _taken(right, args)
    reserved = {*left.columns, *right.columns}
    lk = [unique_name(f"__left_key{i}", reserved) for i in range(len(left_keys))]
    rk = [unique_name(f"__right_key{i}", reserved) for i in range(len(right_keys))]
    rv = [unique_name(f"__right_value{i}", reserved) for i in range(len(right_keys))]
    taken = set(left.columns)
    renamed = {c: unique_name(c + args.suffix if c in taken else c, taken) for c in take}
    keys = list(zip(left_keys, right_keys, strict=True))
    pairs = [_key_pair(left, lc, right, rc, args.normalize_keys) for lc, rc in keys]
    key_types = [
        {
            "left": lc,
            "left_type": cell_kind(left.schema[lc]),
            "right": rc,
            "right_type": cell_kind(right.schema[rc]),
            "matched_as": matched_as,
        }
        for (lc, rc), (_, _, matched_as) in zip(keys, pairs, strict=True)
    ]
    # An outer join copies right-only keys into the left key columns, in the type compared.
    copied = [_key_pair(left, lc, right, rc, False)[:2] for lc, rc in keys]
    lhs = left.with_columns(key.alias(k) for (key, _, _), k in zip(pairs, lk, strict=True))
    rhs = right.select(
        *(key.alias(k) for (_, key, _), k in zip(pairs, rk, strict=True)),
        *(value.alias(v) for (_, value), v in zip(copied, rv, strict=True)),
        *(pl.col(c).alias(renamed[c]) for c in take),
    )
    own = [expr for expr, _ in copied]
    return _Plan(lhs, rhs, lk, rk, rv, own, renamed, key_types, reserved)


def _key_counts(plan: _Plan, args: LookupJoinArgs) -> tuple[pl.DataFrame, int]:
    """Right rows per key (1 each with right_duplicates='first', which also drops the
    repeats from ``plan.rhs``) and how many keys repeat; ``duplicate_keys`` if refused."""
    matchable = plan.rhs.filter(pl.all_horizontal(pl.col(plan.rk).is_not_null()))
    key_counts = matchable.group_by(plan.rk).len(name="__n")
    duplicated = key_counts.filter(pl.col("__n") > 1)
    if duplicated.height and args.right_duplicates == "error":
        examples = [
            plain(", ".join(cell_text(v) for v in row[:-1])) for row in duplicated.head(5).rows()
        ]
        raise StepFailed(
            "duplicate_keys",
            f"{duplicated.height} keys occur more than once in {args.right_file!r} "
            f"(e.g. {', '.join(repr(e) for e in examples)}); use right_duplicates='first' or "
            "'keep_all'.",
            details={"duplicate_keys": duplicated.height, "examples": examples},
        )
    if args.right_duplicates == "first":
        plan.rhs = plan.rhs.unique(subset=plan.rk, keep="first", maintain_order=True)
        key_counts = key_counts.with_columns(pl.lit(1, dtype=pl.UInt32).alias("__n"))
    return key_counts, duplicated.height


def lookup_join(
    left: pl.DataFrame, right: pl.DataFrame, args: LookupJoinArgs, limits: Limits | None = None
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The joined table and counts describing the match; ``too_many_rows`` before making a
    table past ``limits.max_rows``."""
    plan = _plan(left, right, args)
    key_counts, duplicated = _key_counts(plan, args)
    left_keyed = plan.lhs.select(plan.lk).rename(dict(zip(plan.lk, plan.rk, strict=True)))
    matches = left_keyed.join(key_counts, on=plan.rk, how="inner")
    matched_rows = matches.height
    extra = int(matches.select((pl.col("__n") - 1).sum()).item() or 0)
    how = "full" if args.how == "outer" else args.how
    estimate = _join_rows(
        how, plan.lhs.height, matched_rows + extra, plan.rhs.height, matches, key_counts
    )
    check_size(estimate, limits or Limits(), doing=f"Joining with {args.right_file!r}")
    marker = unique_name("__left_row", plan.reserved)
    joined = plan.lhs.with_columns(pl.lit(True).alias(marker)).join(
        plan.rhs,
        left_on=plan.lk,
        right_on=plan.rk,
        how=how,
        coalesce=False,
        maintain_order="left_right" if how == "full" else "left",
    )
    counts: dict[str, Any] = {}
    if how == "full":
        from_right = pl.col(marker).is_null()
        counts["right_only_rows"] = int(joined.select(from_right.sum()).item())
        joined = joined.with_columns(
            pl.when(from_right).then(pl.col(v)).otherwise(own).alias(c)
            for c, v, own in zip(args.left_keys, plan.rv, plan.copied, strict=True)
        )
    out = joined.select([*left.columns, *plan.renamed.values()])
    counts = {
        "how": args.how,
        "rows_left": left.height,
        "rows_right": right.height,
        "rows_out": out.height,
        "matched_left_rows": matched_rows,
        "unmatched_left_rows": left.height - matched_rows,
        "duplicate_right_keys": duplicated,
        "rows_added_by_duplicates": extra if how in ("left", "inner", "full") else 0,
        "columns_added": list(plan.renamed.values())[:LISTED],
        "key_types": plan.key_types,
        **counts,
    }
    return out, counts


Both = tuple[pl.DataFrame, pl.DataFrame]
"""The current table and the right file's."""


def _read_both(ctx: StepContext, args: LookupJoinArgs) -> tuple[Both, str]:
    """The current table (its keys checked first) and right_file's."""
    left = ctx.read_input(args.sheet)
    require_columns(left.columns, args.needed_columns())
    right = ctx.read_file(args.right_file, args.right_sheet)
    return (left, right), f"Read {left.height} rows and {right.height} rows of {args.right_file}"


def _join_rows(
    how: str, left_rows: int, pairs: int, right_rows: int, matches: pl.DataFrame, keys: pl.DataFrame
) -> int:
    """The rows a join will make, from ``pairs`` (matching left rows times right rows with
    their key, summed) and, for a full join, the right rows whose key no left row has."""
    if how in ("semi", "anti"):
        return left_rows
    unmatched_left = left_rows - matches.height
    if how == "inner":
        return pairs
    if how == "left":
        return pairs + unmatched_left
    matched_keys = matches.drop("__n").unique()
    matched_right = keys.join(matched_keys, on=matched_keys.columns, how="semi")
    return pairs + unmatched_left + right_rows - int(matched_right.get_column("__n").sum())


@operation(
    "excel/lookup-join",
    example={
        "right_file": "prices.csv",
        "left_on": "sku",
        "right_on": "product_code",
        "take_columns": ["price"],
        "right_duplicates": "first",
    },
    read=_read_both,
    doing=lambda both, args: f"Joining with {args.right_file}",
)
def joined(both: Both, args: LookupJoinArgs, ctx: StepContext) -> Outcome:
    """Look up rows of another chat file by key columns and bring some of its columns over (like
    VLOOKUP or a SQL join: left, inner, outer, semi, anti).

    Keys of one type compare as that type (whole and decimal numbers as numbers, dates as dates,
    text as text); a number key against a text key compares by the number's text form (120 as
    '120') and the result says so (key_types). All columns keep their types; an outer join's key
    column holds both sides' keys in the type they were compared as (text when a number key met
    a text key). The current table's row order is kept."""
    left, right = both
    out, result = lookup_join(left, right, args, ctx.limits)
    message = f"Matched {result['matched_left_rows']} of {left.height} rows in {args.right_file}"
    for k in result["key_types"]:
        if k["matched_as"] == "text" and k["left_type"] != k["right_type"]:
            message += (
                f"; keys '{k['left']}' ({k['left_type']}) and '{k['right']}' "
                f"({k['right_type']}) were compared as text"
            )
    return Outcome(out, message, result)
