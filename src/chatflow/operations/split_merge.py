"""excel/split-column and excel/merge-columns: one column into several and back.

split-column's transform takes the ``StepContext`` for its limits: a split may not make more
cells than ``max_rows`` allows."""

from __future__ import annotations

import polars as pl
from pydantic import Field, field_validator, model_validator

from chatflow.failures import StepFailed
from chatflow.operations.common import (
    check_size,
    describe,
    new_name,
    no_repeats,
    plural,
    reject_existing,
)
from chatflow.operations.limits import Limits
from chatflow.operations.patterns import check_regex, regex_errors
from chatflow.operations.registry import INPUT_COLUMNS, StepContext
from chatflow.operations.steps import Outcome, TableArgs, operation
from chatflow.operations.values import (
    as_text_note,
    blank_to_null,
    is_empty,
    non_text_kinds,
    shown,
    text_form,
)

MAX_PARTS = 1000  # columns one split may create (without into)
_SENTINELS = ("\x1f", "\x1e", "\ue000", "\ue001", "\U000f0000")

# ---------------------------------------------------------------- excel/split-column


class SplitColumnArgs(TableArgs):
    """Arguments of excel/split-column: give delimiter or regex; into, into_prefix or neither."""

    column: str = Field(description="The column to split.", json_schema_extra=INPUT_COLUMNS)
    delimiter: str | None = Field(
        default=None, min_length=1, description="Split at this literal text, e.g. ',' or ' - '."
    )
    regex: str | None = Field(
        default=None,
        min_length=1,
        description=(
            "Split wherever this regular expression (Rust/polars syntax) matches, e.g. "
            r"'\s*[;,]\s*'. It must not match empty text."
        ),
    )
    into: list[str] | None = Field(
        default=None,
        min_length=2,
        max_length=MAX_PARTS,
        description=(
            "Names of the new columns. A cell with fewer parts leaves the last ones empty; a cell "
            "with more parts keeps the rest, delimiters included, in the last column."
        ),
    )
    into_prefix: str | None = Field(
        default=None,
        min_length=1,
        description=(
            "Name the new columns <prefix>_1, <prefix>_2, ... and make as many as the cell with "
            "the most parts needs (at most max_splits + 1). Default when into is not given: "
            "the column's own name."
        ),
    )
    max_splits: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Split at most this many times (only without into, whose length decides); the rest "
            "stays in the last column."
        ),
    )
    keep_original: bool = Field(
        default=False,
        description=(
            "Keep the split column; the new columns follow it. Otherwise they take its place "
            "(and one of them may reuse its name)."
        ),
    )
    trim: bool = Field(
        default=True,
        description="Remove spaces around each part. Parts left empty become empty cells.",
    )

    @field_validator("into")
    @classmethod
    def _into(cls, into: list[str] | None) -> list[str] | None:
        if into is not None:
            no_repeats(into)
            for name in into:
                new_name(name)
        return into

    @field_validator("regex")
    @classmethod
    def _regex(cls, regex: str | None) -> str | None:
        return None if regex is None else check_regex(regex, allow_empty_match=False)

    @model_validator(mode="after")
    def _choices(self) -> SplitColumnArgs:
        if (self.delimiter is None) == (self.regex is None):
            raise ValueError("give exactly one of delimiter or regex")
        if self.into is not None and self.into_prefix is not None:
            raise ValueError("give into or into_prefix, not both")
        if self.into is not None and self.max_splits is not None:
            raise ValueError("max_splits cannot be combined with into (len(into) - 1 splits)")
        return self

    def needed_columns(self) -> list[str]:
        return [self.column]


def _sentinel(series: pl.Series) -> str:
    """A character the column does not contain, to turn regex matches into one delimiter."""
    for candidate in _SENTINELS:
        if not series.str.contains(candidate, literal=True).any():
            return candidate
    raise StepFailed("split_failed", "The column contains every separator character tried.")


def _part_names(args: SplitColumnArgs, counted: pl.Series) -> list[str]:
    if args.into is not None:
        return list(args.into)
    most = int(counted.max() or 1)  # type: ignore[arg-type]
    if args.max_splits is not None:
        most = min(most, args.max_splits + 1)
    if most > MAX_PARTS:
        raise StepFailed(
            "too_many_parts",
            f"Splitting '{args.column}' would make {most} columns; give into or a smaller "
            f"max_splits (at most {MAX_PARTS} columns).",
            details={"parts": most},
        )
    return [f"{args.into_prefix or args.column}_{i}" for i in range(1, most + 1)]


def _regex_rest(source: pl.Series, parts: pl.DataFrame, regex: str) -> pl.Series:
    """For each cell, its text after the first len(parts.columns) - 1 matches of ``regex``."""
    head = parts.columns[:-1]
    frame = pl.DataFrame({"text": source}).with_columns(
        parts.select(pl.sum_horizontal(pl.col(head).str.len_chars())).to_series().alias("heads")
    )
    matched = pl.col("text").str.extract_all(regex).list.head(len(head)).list.join("")
    offset = pl.col("heads") + matched.str.len_chars()
    return frame.select(pl.col("text").str.slice(offset)).to_series()


def _splitting(df: pl.DataFrame, args: SplitColumnArgs) -> str:
    at = shown(args.delimiter) if args.delimiter is not None else f"regex {shown(args.regex)}"
    return f"Splitting '{args.column}' at {at}"


@operation(
    "excel/split-column",
    example={"column": "full_name", "delimiter": " ", "into": ["first_name", "last_name"]},
    title="split a column",
    doing=_splitting,
)
def split_column(df: pl.DataFrame, args: SplitColumnArgs, ctx: StepContext) -> Outcome:
    """Split a text column at a delimiter or regular expression into several columns.

    Cells with fewer parts get empty cells; with more parts the rest stays in the last column.
    The parts are always text. A number, date or boolean column is split in its text form
    ('3.5', '2024-01-31', 'true'; whole numbers without '.0') and the result names it under
    as_text; a kept original column keeps its type."""
    with regex_errors(args.regex or ""):
        return _split(df, args, ctx.limits)


def _split(df: pl.DataFrame, args: SplitColumnArgs, limits: Limits) -> Outcome:
    source = df.select(text_form(args.column, df.schema[args.column])).to_series()
    if args.regex is not None:
        separator = _sentinel(source)
        marked = source.str.replace_all(args.regex, separator)
        counted = source.str.count_matches(args.regex) + 1
    else:
        assert args.delimiter is not None
        separator = args.delimiter
        marked = source
        counted = source.str.count_matches(separator, literal=True) + 1
    names = _part_names(args, counted)
    n = len(names)
    doing = f"Splitting '{args.column}' of {df.height:,} rows into {n:,} parts"
    check_size(df.height * n, limits, doing=doing, unit="cells")
    others = [c for c in df.columns if c != args.column or args.keep_original]
    reject_existing(names, others, what="the split parts")
    parts = marked.str.splitn(separator, n).struct.rename_fields(names).struct.unnest()
    more = int((counted > n).sum())
    if args.regex is not None and more:
        # The last part keeps the rest of the cell with its original separators.
        rest = _regex_rest(source, parts, args.regex)
        parts = parts.with_columns(
            pl.when(counted > n).then(rest).otherwise(pl.col(names[-1])).alias(names[-1])
        )
    cleaned = [pl.col(name).str.strip_chars() if args.trim else pl.col(name) for name in names]
    parts = parts.select(
        blank_to_null(c).alias(name) for c, name in zip(cleaned, names, strict=True)
    )
    at = df.columns.index(args.column)
    before = df.select(df.columns[: at + (1 if args.keep_original else 0)])
    after = df.select(df.columns[at + 1 :])
    out = pl.concat([before, parts, after], how="horizontal")
    fewer = int((counted < n).sum())
    as_text = non_text_kinds(df.schema, [args.column])
    return Outcome(
        out,
        f"Split '{args.column}' into {plural(n, 'column')}{as_text_note(as_text)}",
        {
            "columns_created": names,
            "rows_with_more_parts": more,
            "rows_with_fewer_parts": fewer,
            **({"as_text": as_text} if as_text else {}),
        },
    )


# ---------------------------------------------------------------- excel/merge-columns


class MergeColumnsArgs(TableArgs):
    """Arguments of excel/merge-columns."""

    columns: list[str] = Field(
        min_length=2,
        description="Columns to merge, in the order their text is joined.",
        json_schema_extra=INPUT_COLUMNS,
    )
    into: str = Field(description="Name of the merged column.")
    separator: str = Field(default=" ", description="Text put between the joined values.")
    skip_empty: bool = Field(
        default=True,
        description=(
            "Leave out empty cells (null or only spaces) so no doubled separators appear; "
            "otherwise they join as empty text. A row whose cells are all empty gives an "
            "empty cell either way."
        ),
    )
    keep_original: bool = Field(
        default=False,
        description=(
            "Keep the merged columns; the new column follows the rightmost of them. Otherwise "
            "they are removed and the new column takes the place of the leftmost (it may "
            "reuse one of their names)."
        ),
    )

    _columns = field_validator("columns")(no_repeats)
    _into = field_validator("into")(new_name)

    def needed_columns(self) -> list[str]:
        return list(self.columns)


@operation(
    "excel/merge-columns",
    example={"columns": ["street", "postal_code", "city"], "separator": ", ", "into": "address"},
    title="merge columns",
    doing=lambda df, args: f"Merging {describe(args.columns)} into '{args.into}'",
)
def merge_columns(df: pl.DataFrame, args: MergeColumnsArgs) -> Outcome:
    """Join the text of several columns, row by row, into one column with a separator, skipping
    empty cells by default.

    The merged column is always text; number, date and boolean columns join in their text form
    ('120', '3.5', '2024-01-31', 'true'; whole numbers without '.0') and the result names them
    under as_text. Kept originals keep their types."""
    merged = set(args.columns)
    others = [c for c in df.columns if c not in merged or args.keep_original]
    reject_existing([args.into], others, what="the merged column")
    texts = [text_form(c, df.schema[c]) for c in args.columns]
    if args.skip_empty:
        texts = [pl.when(t.str.strip_chars() == "").then(None).otherwise(t) for t in texts]
        joined = pl.concat_str(texts, separator=args.separator, ignore_nulls=True)
    else:
        joined = pl.concat_str([t.fill_null("") for t in texts], separator=args.separator)
    all_empty = df.select(
        pl.all_horizontal(is_empty(pl.col(c), df.schema[c]) for c in args.columns)
    ).to_series()
    new = pl.when(all_empty).then(None).otherwise(joined).alias(args.into)
    positions = [df.columns.index(c) for c in args.columns]
    anchor = max(positions) if args.keep_original else min(positions)
    columns: list[pl.Expr] = []
    for i, name in enumerate(df.columns):
        if args.keep_original or name not in merged:
            columns.append(pl.col(name))
        if i == anchor:
            columns.append(new)
    out = df.select(columns)
    empty = int(all_empty.sum())
    as_text = non_text_kinds(df.schema, args.columns)
    return Outcome(
        out,
        f"Merged {describe(args.columns)} into '{args.into}'{as_text_note(as_text)}",
        {"column": args.into, "empty_rows": empty, **({"as_text": as_text} if as_text else {})},
    )
