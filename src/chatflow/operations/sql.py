"""excel/sql: run one read-only SQL query (polars SQL) over the current table and chat files.

It reads the chat files its query names (the input only if named), so its ``read``
(``_read_mentioned``) replaces the reading; its transform takes the ``StepContext`` to run the
query in the sealed process (``ctx.run_confined``).

Tables: ``input`` is the current table; every chat file is a table named after its file name:
the name without extension, lower-cased, every run of characters other than a-z and 0-9 replaced
by "_", edges trimmed ("Sales 2024.xlsx" -> ``sales_2024``); a name that starts with a digit gets
"t_" in front ("2024.csv" -> ``t_2024``); when two files give the same name (or "input") the later
one in alphabetical order gets "_2", "_3"... xlsx files contribute their first sheet; the
``tables`` argument names other sheets (or files) explicitly.  Table names are case-insensitive.
A file is read only if the query mentions its table name.

Confinement (see sql_query.py and execution/sealing.py): the query is planned and run in a sealed
worker process that holds only the tables read for it and cannot open any file; a plan with
anything but those in-memory tables (a file scan, a table function) is refused with
``sql_forbidden`` before it runs.  No text filtering: what the query may reach is decided by
what exists where it runs.  A result over ``CHATFLOW_MAX_ROWS`` rows fails with
``too_many_rows``.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any

import polars as pl
from pydantic import Field, field_validator

from chatflow.failures import StepFailed
from chatflow.operations.registry import (
    OperationArgs,
    StepContext,
)
from chatflow.operations.sql_query import plan_and_run
from chatflow.operations.steps import Outcome, TableArgs, operation

INPUT_TABLE = "input"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# One pass over the query, so a "--" inside a string is no comment and a "'" inside a comment
# no string.  Only what polars could run matters: unknown syntax is kept as "other" tokens.
_TOKENS = re.compile(
    r"""(?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))
      |(?P<string>'(?:[^']|'')*(?:'|\Z))
      |(?P<quoted>"(?:[^"]|"")*(?:"|\Z)|`[^`]*(?:`|\Z))
      |(?P<word>[A-Za-z_][A-Za-z0-9_]*)
      |(?P<space>\s+)
      |(?P<other>.)""",
    re.S | re.X,
)


def table_name(file_name: str) -> str:
    """The SQL table name of a chat file (see the module docstring)."""
    stem = PurePosixPath(file_name).stem.lower()
    name = re.sub(r"[^a-z0-9]+", "_", stem).strip("_") or "file"
    return f"t_{name}" if name[0].isdigit() else name


def file_tables(file_names: list[str]) -> dict[str, str]:
    """Table name -> file name for every chat file, deterministic for a given set of names."""
    tables: dict[str, str] = {}
    for file_name in sorted(file_names):
        base = name = table_name(file_name)
        n = 1
        while name in tables or name == INPUT_TABLE:
            n += 1
            name = f"{base}_{n}"
        tables[name] = file_name
    return tables


class TableRef(OperationArgs):
    """A chat file (and sheet) to register under a chosen table name."""

    file: str = Field(min_length=1, description="The chat file's name.")
    sheet: str | None = Field(default=None, description="Its sheet (default: the first).")


class SqlArgs(TableArgs):
    """Arguments of excel/sql."""

    query: str = Field(
        min_length=1,
        description="One SELECT or WITH query (polars SQL). The current table is 'input'; "
        "each chat file is a table named after its file name (lower-case, non-alphanumerics "
        "-> '_', e.g. 'Sales 2024.xlsx' -> sales_2024). Column names are case-sensitive; "
        'quote unusual ones: "Unit Price".',
    )
    tables: dict[str, TableRef] | None = Field(
        default=None,
        max_length=50,
        description="Extra table names for chat files or particular sheets, e.g. "
        '{"q1": {"file": "sales.xlsx", "sheet": "Q1"}}; they win over the derived names.',
    )
    infer_types: bool = Field(
        default=True,
        description="Deprecated; has no effect (accepted so older workflows still validate). "
        "Columns arrive typed: numbers, booleans and dates as such, text as text.",
    )
    sheet: str | None = Field(
        default=None,
        description="Sheet of the run's xlsx input to use as 'input' instead of the table the "
        "previous step handed on.",
    )

    @field_validator("tables")
    @classmethod
    def _names(cls, tables: dict[str, TableRef] | None) -> dict[str, TableRef] | None:
        for name in tables or {}:
            if not _IDENTIFIER.match(name) or name.lower() == INPUT_TABLE:
                raise ValueError(
                    f"table name {name!r} must be letters, digits and _ (not starting with a "
                    f"digit) and not {INPUT_TABLE!r}"
                )
        return tables


def _tokens(query: str) -> list[tuple[str, str]]:
    """(kind, text) of the query's significant tokens; quoted identifiers are unquoted."""
    tokens = []
    for match in _TOKENS.finditer(query):
        kind = match.lastgroup or "other"
        text = match.group()
        if kind in ("comment", "space"):
            continue
        if kind == "quoted":
            text = text[1:-1] if len(text) > 1 and text[-1] == text[0] else text[1:]
            text = text.replace('""', '"')
        tokens.append((kind, text))
    return tokens


def statement_problem(query: str) -> str | None:
    """Why ``query`` is not one SELECT (or WITH ... SELECT) statement, or None.

    A courtesy that gives DDL and scripts a clear answer; it guards nothing (the plan check and
    the sealed process do), so it only needs to agree with polars on ordinary queries.
    """
    tokens = _tokens(query)
    end = next((i for i, (k, text) in enumerate(tokens) if k == "other" and text == ";"), None)
    if end is not None and any(text != ";" for _, text in tokens[end + 1 :]):
        return "only one statement may run"
    first = next((text for kind, text in tokens if text != "("), "")
    if first.lower() not in ("select", "with"):
        return "only SELECT queries (or WITH ... SELECT) are allowed"
    return None


def referenced_names(query: str) -> set[str]:
    """Every identifier in the query, lower-cased: a superset of the tables it reads."""
    return {text.lower() for kind, text in _tokens(query) if kind in ("word", "quoted")}


Mentioned = tuple[dict[str, pl.DataFrame], list[dict[str, Any]]]
"""The tables a query names, by table name, and what each was read from."""


def _read_mentioned(ctx: StepContext, args: SqlArgs) -> tuple[Mentioned, str]:
    """The tables the query names (``sql_forbidden`` first for anything but one query)."""
    problem = statement_problem(args.query)
    if problem is not None:
        raise StepFailed("sql_forbidden", problem)
    mentioned = referenced_names(args.query)
    sources: dict[str, tuple[str, str | None]] = {
        name: (file_name, None) for name, file_name in file_tables(ctx.file_names()).items()
    }
    for name, ref in (args.tables or {}).items():
        sources[name.lower()] = (ref.file, ref.sheet)
    frames: dict[str, pl.DataFrame] = {}
    used: list[dict[str, Any]] = []
    if INPUT_TABLE in mentioned:
        frames[INPUT_TABLE] = ctx.read_input(args.sheet)
        used.append(
            {"table": INPUT_TABLE, "file": ctx.input_name, "rows": frames[INPUT_TABLE].height}
        )
    for name, (file_name, sheet) in sources.items():
        if name in mentioned:
            ctx.check_cancelled()
            frames[name] = ctx.read_file(file_name, sheet)
            used.append({"table": name, "file": file_name, "rows": frames[name].height})
    return (frames, used), f"Read {len(frames)} tables"


@operation(
    "excel/sql",
    example={
        "query": "SELECT region, SUM(amount) AS total FROM input GROUP BY region "
        "ORDER BY total DESC"
    },
    read=_read_mentioned,
    doing=lambda read, args: "Running the query",
)
def queried(read: Mentioned, args: SqlArgs, ctx: StepContext) -> Outcome:
    """Run one SQL SELECT query (polars SQL) over the current table, named 'input', and the chat's
    files, each named after its file name (lower-case, non-alphanumerics -> '_').

    It reads only the chat's tables: file-reading table functions are refused. Columns have
    their real types: numbers (SUM(amount), amount > 10), booleans (WHERE paid), dates and
    datetimes (d >= '2024-01-01'), text (codes such as '01234' stay text; CAST(x AS DOUBLE) to
    compute with numbers held as text). The result keeps the types the query gives."""
    frames, used = read
    out: pl.DataFrame = ctx.run_confined(
        plan_and_run, args.query, frames, max_rows=ctx.limits.max_rows
    )
    result = {
        "rows_out": out.height,
        "columns": out.columns[:50],
        "tables_used": used[:50],
    }
    message = f"The query returned {out.height} rows"
    return Outcome(out, message, result)
