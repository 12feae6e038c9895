"""excel/validate: check rows against rules; valid rows go on, invalid ones to a side file.

Its transform takes the ``StepContext`` to write that side file (named after the input) and
returns it in ``Outcome.files``."""

from __future__ import annotations

from typing import Any

import polars as pl
from pydantic import Field, field_validator, model_validator

from chatflow.failures import StepFailed
from chatflow.operations.common import column_type_mismatch, require_columns, unique_name
from chatflow.operations.registry import INPUT_COLUMNS, OperationArgs, StepContext, WrittenFile
from chatflow.operations.steps import Outcome, OutputName, TableArgs, operation
from chatflow.operations.values import (
    CellValue,
    as_number,
    is_empty,
    number_value,
    text_form,
    value_text,
)
from chatflow.spreadsheets.cell_types import cell_kind

ERRORS_COLUMN = "_errors"
MAX_RULES = 200
_EXAMPLES = 20


def _check_regex(pattern: str) -> str:
    """Compile with polars' (Rust) regex engine, which runs the check."""
    try:
        pl.Series([""], dtype=pl.String).str.contains(pattern)
    except pl.exceptions.PolarsError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid"
        raise ValueError(f"invalid regular expression: {first}") from None
    return pattern


class Rule(OperationArgs):
    """Checks on one column; every check given must hold for a row to be valid."""

    column: str = Field(description="The column checked.", json_schema_extra=INPUT_COLUMNS)
    required: bool = Field(
        default=False,
        description="The cell must not be empty (blank or only spaces). Without it, the other "
        "checks skip empty cells.",
    )
    regex: str | None = Field(
        default=None,
        min_length=1,
        description="The whole value must match this regular expression (Rust regex syntax; "
        "^ and $ are implied). Example: \\d{5} for five digits.",
    )
    unique: bool = Field(
        default=False,
        description="No other row may have the same value; every row of a repeated value is "
        "invalid (empty cells are not compared).",
    )
    allowed: list[CellValue] | None = Field(
        default=None,
        min_length=1,
        description="The value must be one of these: exact text on a text column; on a "
        "number column numbers (JSON or number text such as '10') compare as numbers; other "
        "columns compare the cell as it reads (true, 2024-03-01).",
    )
    min: float | None = Field(
        default=None,
        description="The value must be a number at least this big: a number column compares "
        "its numbers; a text column reads each value as a number (one that is not fails 'not a "
        "number'); date and boolean columns fail with column_type_mismatch.",
    )
    max: float | None = Field(
        default=None, description="The value must be a number at most this big (as min)."
    )
    min_length: int | None = Field(
        default=None, ge=0, description="The value has at least this many characters."
    )
    max_length: int | None = Field(
        default=None, ge=0, description="The value has at most this many characters."
    )

    @field_validator("regex")
    @classmethod
    def _regex(cls, pattern: str | None) -> str | None:
        return None if pattern is None else _check_regex(pattern)

    @model_validator(mode="after")
    def _sensible(self) -> Rule:
        checks = (
            self.required,
            self.regex is not None,
            self.unique,
            self.allowed is not None,
            self.min is not None,
            self.max is not None,
            self.min_length is not None,
            self.max_length is not None,
        )
        if not any(checks):
            raise ValueError(f"the rule for {self.column!r} checks nothing")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min is greater than max")
        if (
            self.min_length is not None
            and self.max_length is not None
            and self.min_length > self.max_length
        ):
            raise ValueError("min_length is greater than max_length")
        return self


class ValidateArgs(TableArgs):
    """Arguments of excel/validate."""

    rules: list[Rule] = Field(
        min_length=1, max_length=MAX_RULES, description="The checks, applied to every row."
    )
    invalid_output: OutputName | None = Field(
        default=None,
        description="File for the invalid rows, with a last column '_errors' listing every "
        "failed check ('postal_code: does not match \\d{5}; email: required'). Default: "
        "<input name>_invalid.xlsx. Not written when every row is valid.",
    )
    fail_on_invalid: bool = Field(
        default=False,
        description="Fail the step (code validation_failed, examples in the details) when any "
        "row is invalid, instead of continuing with the valid rows.",
    )

    @model_validator(mode="after")
    def _two_files(self) -> ValidateArgs:
        if self.output is not None and self.output == self.invalid_output:
            raise ValueError("output and invalid_output must be different files")
        return self

    def needed_columns(self) -> list[str]:
        return list(dict.fromkeys(rule.column for rule in self.rules))


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() else str(value)


def _allowed(raw: pl.Expr, text: pl.Expr, dtype: pl.DataType, allowed: list[CellValue]) -> pl.Expr:
    """True where the cell is one of ``allowed``: the cell as it reads, or on a number column
    numerically."""
    found = text.is_in([value_text(v) for v in allowed])
    if not dtype.is_numeric():
        return found
    numbers = [
        n
        for v in allowed
        if not isinstance(v, bool) and (n := number_value(value_text(v))) is not None
    ]
    return found | raw.cast(pl.Float64).is_in(numbers) if numbers else found


def rule_checks(rule: Rule, dtype: pl.DataType) -> list[tuple[str, pl.Expr, str]]:
    """(check name, expression true where a row fails, message) for each check of ``rule``.

    Regex, allowed values and lengths look at the cell as it reads (numbers 120 and 3.5,
    dates ISO, booleans true/false); min and max compare numbers.
    """
    raw = pl.col(rule.column)
    text = text_form(rule.column, dtype)
    present = is_empty(raw, dtype).not_()
    name = rule.column
    checks: list[tuple[str, pl.Expr, str]] = []
    if rule.required:
        checks.append(("required", ~present, f"{name}: required"))
    if rule.regex is not None:
        matches = text.str.contains(f"^(?:{rule.regex})$")
        checks.append(("regex", present & ~matches, f"{name}: does not match {rule.regex}"))
    if rule.unique:
        repeated = raw.is_duplicated() & raw.is_not_null()
        checks.append(("unique", repeated, f"{name}: duplicate value"))
    if rule.allowed is not None:
        allowed = _allowed(raw, text, dtype, rule.allowed)
        checks.append(("allowed", present & ~allowed, f"{name}: not an allowed value"))
    if rule.min is not None or rule.max is not None:
        if not (dtype.is_numeric() or dtype in (pl.String, pl.Null)):
            raise column_type_mismatch(
                name,
                cell_kind(dtype),
                "min and max check numbers (convert the column with excel/convert-types).",
            )
        number = raw if dtype.is_numeric() else as_number(raw)
        checks.append(("number", present & number.is_null(), f"{name}: not a number"))
        if rule.min is not None:
            low = number < rule.min
            checks.append(("min", present & low, f"{name}: less than {_number(rule.min)}"))
        if rule.max is not None:
            high = number > rule.max
            checks.append(("max", present & high, f"{name}: more than {_number(rule.max)}"))
    if rule.min_length is not None:
        short = text.str.len_chars() < rule.min_length
        checks.append(
            ("min_length", present & short, f"{name}: shorter than {rule.min_length} characters")
        )
    if rule.max_length is not None:
        long = text.str.len_chars() > rule.max_length
        checks.append(
            ("max_length", present & long, f"{name}: longer than {rule.max_length} characters")
        )
    return checks


def validate_rows(
    df: pl.DataFrame, rules: list[Rule]
) -> tuple[pl.DataFrame, pl.DataFrame, list[dict[str, Any]]]:
    """(valid rows, invalid rows with an errors column, failures per check)."""
    require_columns(df.columns, [r.column for r in rules])
    checks = [
        (rule.column, check, failing.fill_null(False), message)
        for rule in rules
        for check, failing, message in rule_checks(rule, df.schema[rule.column])
    ]
    flags = [f"\x00check{i}" for i in range(len(checks))]
    flagged = df.with_columns(
        failing.alias(flag) for flag, (_, _, failing, _) in zip(flags, checks, strict=True)
    )
    counts = flagged.select(pl.col(flags).sum()).row(0) if flags else ()
    by_rule = [
        {"column": column, "check": check, "failures": int(n)}
        for (column, check, _, _), n in zip(checks, counts, strict=True)
    ]
    errors = unique_name(ERRORS_COLUMN, set(df.columns))
    messages = pl.concat_str(
        [
            pl.when(pl.col(flag)).then(pl.lit(message)).otherwise(None)
            for flag, (_, _, _, message) in zip(flags, checks, strict=True)
        ],
        separator="; ",
        ignore_nulls=True,
    )
    flagged = flagged.with_columns(pl.any_horizontal(flags).alias("\x00bad"))
    valid = flagged.filter(~pl.col("\x00bad")).select(df.columns)
    invalid = (
        flagged.filter(pl.col("\x00bad"))
        .with_columns(messages.alias(errors))
        .select([*df.columns, errors])
    )
    return valid, invalid, by_rule


@operation(
    "excel/validate",
    example={
        "rules": [
            {"column": "postal_code", "required": True, "regex": "\\d{5}"},
            {"column": "email", "required": True, "regex": "[^@\\s]+@[^@\\s]+\\.[^@\\s]+"},
            {"column": "amount", "min": 0},
        ]
    },
    doing=lambda df, args: f"Checking {df.height} rows against {len(args.rules)} rules",
)
def validated(df: pl.DataFrame, args: ValidateArgs, ctx: StepContext) -> Outcome:
    """Check every row against rules (required, regex, unique, allowed values, numeric min/max,
    text length).

    Valid rows continue as the table; invalid rows are written to a side file with an '_errors'
    column giving every reason; both keep the columns' types. min/max compare the numbers of a
    number column, and read a text column's values as numbers; on a date or boolean column they
    fail with column_type_mismatch (422). regex, allowed and lengths check a number, date or
    boolean cell as it reads (120, 3.5, 2024-03-01, true); allowed compares numbers numerically
    on number columns."""
    valid, invalid, by_rule = validate_rows(df, args.rules)
    errors = invalid.columns[-1]
    if invalid.height and args.fail_on_invalid:
        examples = invalid.head(_EXAMPLES).select(errors).to_series().to_list()
        raise StepFailed(
            "validation_failed",
            f"{invalid.height} of {df.height} rows are invalid (first: {examples[0]})",
            details={"invalid": invalid.height, "valid": valid.height, "examples": examples},
        )
    files: list[WrittenFile] = []
    if invalid.height:
        name = args.invalid_output or f"{ctx.input_stem}_invalid.xlsx"
        ctx.report(60, f"Writing {invalid.height} invalid rows to {name}")
        files.append(ctx.write_table(invalid, name=name))
    result = {
        "rows_in": df.height,
        "valid": valid.height,
        "invalid": invalid.height,
        "by_rule": by_rule[:50],
        "invalid_file": files[0].name if files else None,
    }
    message = f"{valid.height} valid and {invalid.height} invalid rows"
    return Outcome(valid, message, result, files)
