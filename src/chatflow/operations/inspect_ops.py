"""excel/inspect, excel/preview, excel/profile-columns, excel/value-counts; type inference.

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
type.  The numeric helpers here (``as_number``, ``as_integer``) implement the catalogue's lenient
rule for numeric aggregations over text columns: a value that is not a number becomes null
(as with ``cast(strict=False)``), so it is ignored by sum, mean, min and max.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import polars as pl
from pydantic import Field, field_validator

from chatflow.operations.common import require_columns
from chatflow.operations.output_ops import (
    OUTPUT_DESCRIPTION,
    SHEET_DESCRIPTION,
    OutputName,
    finish,
    plain,
    unique_name,
)
from chatflow.operations.registry import (
    OperationArgs,
    StepContext,
    StepFailed,
    StepOutput,
    registry,
)

DETAILED_COLUMNS = 50  # columns described one by one in a result
PREVIEW_COLUMNS = 100
PREVIEW_TEXT = 1000  # characters of one previewed cell
TOP_VALUES = 10

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


# --- numbers and types --------------------------------------------------------------------


def as_number(expr: pl.Expr) -> pl.Expr:
    """Text -> Float64 (surrounding spaces ignored); what is not a finite number becomes null."""
    number = expr.cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False)
    return pl.when(number.is_finite()).then(number).otherwise(None)


def as_integer(expr: pl.Expr) -> pl.Expr:
    """Text -> Int64 (surrounding spaces ignored); what is not a whole number that fits in 64
    bits ("1.0" included) becomes null."""
    return expr.cast(pl.String).str.strip_chars().cast(pl.Int64, strict=False)


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


def _describe_columns(columns: list[str]) -> str:
    if len(columns) == 1:
        return f"column '{columns[0]}'"
    return f"{len(columns)} columns"


def _unique(values: list[str]) -> list[str]:
    repeated = sorted(v for v, n in Counter(values).items() if n > 1)
    if repeated:
        raise ValueError(f"listed more than once: {', '.join(repeated)}")
    return values


def _passthrough_input(ctx: StepContext, sheet: str | None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(table to look at, table to hand on): a passthrough step never replaces the chain's
    table, even when it looks at another sheet of the input."""
    looked_at = ctx.read_input(sheet)
    return looked_at, (looked_at if sheet is None else ctx.read_input(None))


# --- excel/inspect ------------------------------------------------------------------------

# No sheet can have this name: Excel forbids [ ] : in sheet names.
_NO_SUCH_SHEET = "[chatflow:list-sheets]"


def input_sheets(ctx: StepContext) -> list[str] | None:
    """The sheet names of the run's input file, [] for csv, None if unknown.

    StepContext has no call for this, so ask for a sheet that cannot exist: the read policy
    refuses it with ``sheet_not_found`` listing the available ones, before reading any cells.
    """
    if ctx.input_name.lower().endswith((".csv", ".tsv")):
        return []
    try:
        ctx.read_input(_NO_SUCH_SHEET)
    except StepFailed as exc:
        if exc.code == "sheet_not_found" and isinstance(exc.details, dict):
            available = exc.details.get("available")
            if isinstance(available, list):
                return [str(name) for name in available][:DETAILED_COLUMNS]
    return None


class InspectArgs(OperationArgs):
    """Arguments of excel/inspect."""

    sheet: str | None = Field(
        default=None,
        description="Inspect this sheet of the run's xlsx input (default: the current table). "
        "The table handed to the next step is unchanged either way.",
    )


@registry.register(
    "excel/inspect",
    description=(
        "Describe the table: the input file's sheets, row count and, for each column (the first "
        f"{DETAILED_COLUMNS} in detail), its inferred type (integer, float, date, datetime, "
        "boolean, text or empty, judged from the text of every value) and its number of empty "
        "cells. Hands the table on unchanged."
    ),
    args=InspectArgs,
    example={},
)
def inspect(ctx: StepContext, args: InspectArgs) -> StepOutput:
    """Row count, columns, inferred types and nulls."""
    ctx.report(0, "Starting step execution")
    df, handed_on = _passthrough_input(ctx, args.sheet)
    ctx.report(25, f"Read {df.height} rows")
    detailed = list(df.columns[:DETAILED_COLUMNS])
    ctx.report(50, f"Inferring the types of {_describe_columns(detailed)}")
    types = infer_types(df, detailed)
    nulls = df.select(pl.col(c).null_count() for c in detailed).row(0) if detailed else ()
    result = {
        "input": ctx.input_name,
        "sheets": input_sheets(ctx),
        "sheet": args.sheet,
        "row_count": df.height,
        "column_count": df.width,
        "columns": [
            {"name": name, "inferred_type": types[name], "nulls": n}
            for name, n in zip(detailed, nulls, strict=True)
        ],
        "columns_truncated": df.width > len(detailed),
    }
    ctx.report(75, "Returning the description")
    return StepOutput(
        table=handed_on,
        result=result,
        message=f"{df.height} rows, {df.width} columns",
        passthrough=True,
    )


# --- excel/preview ------------------------------------------------------------------------


class PreviewArgs(OperationArgs):
    """Arguments of excel/preview."""

    rows: int = Field(default=20, ge=1, le=1000, description="How many rows to show (1-1000).")
    sheet: str | None = Field(
        default=None,
        description="Preview this sheet of the run's xlsx input (default: the current table). "
        "The table handed to the next step is unchanged either way.",
    )


@registry.register(
    "excel/preview",
    description=(
        "Show the first rows of the table (at most 1000 rows and the first "
        f"{PREVIEW_COLUMNS} columns; cells longer than {PREVIEW_TEXT} characters are cut "
        "with '…'). Hands the table on unchanged."
    ),
    args=PreviewArgs,
    example={"rows": 20},
)
def preview(ctx: StepContext, args: PreviewArgs) -> StepOutput:
    """The first ``rows`` rows as JSON."""
    ctx.report(0, "Starting step execution")
    df, handed_on = _passthrough_input(ctx, args.sheet)
    ctx.report(25, f"Read {df.height} rows")
    shown = df.head(args.rows).select(df.columns[:PREVIEW_COLUMNS])
    ctx.report(50, f"Preparing {shown.height} rows")
    result = {
        "columns": shown.columns,
        "rows": [[plain(v, PREVIEW_TEXT) for v in row] for row in shown.iter_rows()],
        "row_count": df.height,
        "rows_shown": shown.height,
        "column_count": df.width,
        "columns_truncated": df.width > shown.width,
    }
    ctx.report(75, "Returning the preview")
    return StepOutput(
        table=handed_on,
        result=result,
        message=f"Showing {shown.height} of {df.height} rows",
        passthrough=True,
    )


# --- excel/profile-columns ----------------------------------------------------------------


class ProfileColumnsArgs(OperationArgs):
    """Arguments of excel/profile-columns."""

    columns: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=DETAILED_COLUMNS,
        description=f"Columns to profile (default: the first {DETAILED_COLUMNS}).",
    )
    sheet: str | None = Field(
        default=None,
        description="Profile this sheet of the run's xlsx input (default: the current table). "
        "The table handed to the next step is unchanged either way.",
    )

    @field_validator("columns")
    @classmethod
    def _no_repeats(cls, columns: list[str] | None) -> list[str] | None:
        return None if columns is None else _unique(columns)


def profile(df: pl.DataFrame, columns: list[str]) -> list[dict[str, Any]]:
    """Per column: type, nulls, distinct non-null values, min/max/mean, top values.

    min and max are numbers when the column is integer or float, else the smallest and largest
    text (ISO dates and datetimes compare correctly as text); mean is null unless numeric.
    """
    types = infer_types(df, columns)
    numeric = [c for c in columns if types[c] in ("integer", "float")]
    facts = column_facts(df, numeric, types)
    stats: list[pl.Expr] = []
    for i, name in enumerate(columns):
        col = pl.col(name)
        fact = facts.get(name)
        value = fact.numeric_expr() if fact is not None else col
        stats += [
            col.null_count().alias(f"nulls{i}"),
            col.drop_nulls().n_unique().alias(f"distinct{i}"),
            value.min().alias(f"min{i}"),
            value.max().alias(f"max{i}"),
            (value.mean() if fact is not None else pl.lit(None)).alias(f"mean{i}"),
        ]
    row = df.select(stats).row(0, named=True) if stats else {}
    queries = []
    for name in columns:
        count = unique_name("count", {name})
        queries.append(
            df.lazy()
            .select(pl.col(name).drop_nulls())
            .group_by(name)
            .len(name=count)
            .sort([count, name], descending=[True, False], maintain_order=True)
            .head(TOP_VALUES)
        )
    tops = pl.collect_all(queries)  # in parallel
    profiles = []
    for i, (name, top) in enumerate(zip(columns, tops, strict=True)):
        profiles.append(
            {
                "name": name,
                "inferred_type": types[name],
                "nulls": row[f"nulls{i}"],
                "distinct": row[f"distinct{i}"],
                "min": plain(row[f"min{i}"]),
                "max": plain(row[f"max{i}"]),
                "mean": plain(row[f"mean{i}"]),
                "top_values": [{"value": plain(v), "count": n} for v, n in top.iter_rows()],
            }
        )
    return profiles


@registry.register(
    "excel/profile-columns",
    description=(
        "Profile columns: inferred type, empty cells, distinct values, min and max (numeric "
        "for integer and float columns, else text), mean (numeric columns) and the "
        f"{TOP_VALUES} most frequent values. Hands the table on unchanged."
    ),
    args=ProfileColumnsArgs,
    example={"columns": ["postal_code", "amount"]},
    input_columns=lambda args: list(args.columns or []),
)
def profile_columns(ctx: StepContext, args: ProfileColumnsArgs) -> StepOutput:
    """Statistics for each requested column."""
    ctx.report(0, "Starting step execution")
    df, handed_on = _passthrough_input(ctx, args.sheet)
    ctx.report(25, f"Read {df.height} rows")
    columns = args.columns or list(df.columns[:DETAILED_COLUMNS])
    require_columns(df.columns, columns)
    ctx.report(50, f"Profiling {_describe_columns(columns)}")
    result = {
        "row_count": df.height,
        "columns": profile(df, columns),
        "columns_truncated": args.columns is None and df.width > len(columns),
    }
    ctx.report(75, "Returning the profile")
    return StepOutput(
        table=handed_on,
        result=result,
        message=f"Profiled {_describe_columns(columns)} over {df.height} rows",
        passthrough=True,
    )


# --- excel/value-counts -------------------------------------------------------------------


class ValueCountsArgs(OperationArgs):
    """Arguments of excel/value-counts."""

    column: str = Field(description="The column whose values are counted.")
    top_n: int | None = Field(
        default=None, ge=1, description="Keep only the N most frequent values (default: all)."
    )
    include_percent: bool = Field(
        default=False,
        description="Add a 'percent' column: the share of the counted rows (0-100, 2 decimals); "
        "the whole column is the base even when top_n keeps fewer values.",
    )
    include_nulls: bool = Field(
        default=True,
        description="Count empty cells as a value of their own (an empty cell in the output); "
        "false leaves them out of the counts and of the percent base.",
    )
    sheet: str | None = Field(default=None, description=SHEET_DESCRIPTION)
    output: OutputName | None = Field(default=None, description=OUTPUT_DESCRIPTION)


def value_counts(
    df: pl.DataFrame,
    column: str,
    *,
    top_n: int | None = None,
    include_percent: bool = False,
    include_nulls: bool = True,
) -> pl.DataFrame:
    """[column, count, (percent)] sorted by count (descending), then by value (empty last)."""
    require_columns(df.columns, [column])
    taken = {column}
    count = unique_name("count", taken)
    values = df.select(column)
    if not include_nulls:
        values = values.drop_nulls()
    out = (
        values.group_by(column)
        .len(name=count)
        .with_columns(pl.col(count).cast(pl.Int64))
        .sort([count, column], descending=[True, False], nulls_last=True, maintain_order=True)
    )
    if include_percent:
        total = max(values.height, 1)
        out = out.with_columns(
            (pl.col(count) * 100.0 / total).round(2).alias(unique_name("percent", taken))
        )
    return out.head(top_n) if top_n is not None else out


@registry.register(
    "excel/value-counts",
    description=(
        "Count how often each value of a column occurs: a table [value, count, (percent)] "
        "sorted by count (most frequent first), ties by value as text. Also returned in the "
        f"step result (the first {TOP_VALUES} values)."
    ),
    args=ValueCountsArgs,
    example={"column": "city", "top_n": 10, "include_percent": True},
    input_columns=lambda args: [args.column],
)
def run_value_counts(ctx: StepContext, args: ValueCountsArgs) -> StepOutput:
    """The counts table, also summarised in the result."""
    ctx.report(0, "Starting step execution")
    df = ctx.read_input(args.sheet)
    ctx.report(25, f"Read {df.height} rows")
    require_columns(df.columns, [args.column])
    ctx.report(50, f"Counting the values of column '{args.column}'")
    full = value_counts(
        df,
        args.column,
        include_percent=args.include_percent,
        include_nulls=args.include_nulls,
    )
    out = full.head(args.top_n) if args.top_n is not None else full
    result = {
        "column": args.column,
        "rows_in": df.height,
        "distinct": full.height,
        "rows_out": out.height,
        "top": [
            {
                "value": plain(row[0]),
                "count": row[1],
                **({"percent": row[2]} if len(row) > 2 else {}),
            }
            for row in out.head(TOP_VALUES).iter_rows()
        ],
    }
    return finish(
        ctx,
        out,
        output=args.output,
        result=result,
        message=f"{full.height} distinct values in column '{args.column}'",
    )
