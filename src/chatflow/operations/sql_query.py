"""Plan and run one excel/sql query over in-memory tables, in the sealed worker.

The first wall: the query's plan may contain only in-memory tables and the relational nodes
listed in ``ALLOWED_NODES``.  Anything else, a file scan, a Python scan, a map function that
reads files (polars answers ``COUNT(*) FROM read_csv(...)`` with one), or a node type a future
polars adds, is refused before anything runs.  The second wall is the process this runs in
(``execution/sealing.py``): even planning, which may read a file's schema, cannot open a file.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from chatflow.failures import StepFailed

# Relational nodes of polars' IR that compute only from their inputs (polars 2.1).
ALLOWED_NODES = frozenset(
    {
        "Cache", "DataFrameScan", "Distinct", "Filter", "GroupBy", "HConcat", "HStack",
        "Join", "Reduce", "Select", "SimpleProjection", "Slice", "Sort", "Union",
    }
)  # fmt: skip
ALLOWED_MAP_FUNCTIONS = frozenset(
    {"explode", "rechunk", "rename", "row_index", "unnest", "unpivot"}
)
FORBIDDEN = "the query may read only the chat's tables (no files, no table functions)"
# polars' words for "could not open the file", which a sealed process gets for any path, and
# for a glob that found nothing, which is what every glob finds there.
_SEALED_ERRORS = (
    "os error 24", "too many open files", "os error 13", "permission denied", "expanded paths",
)  # fmt: skip
_MAX_LIMIT = 2**32 - 2  # polars' LIMIT takes its row index type, 32-bit by default


def plan_and_run(query: str, frames: dict[str, pl.DataFrame], *, max_rows: int) -> pl.DataFrame:
    """The query's result, at most ``max_rows`` rows; StepFailed for a refused or bad query."""
    try:
        context = pl.SQLContext(frames={name: df.lazy() for name, df in frames.items()})
        plan = context.execute(query, eager=False)
        refused = forbidden_node(plan)
        if refused is not None:
            raise StepFailed("sql_forbidden", FORBIDDEN, details={"node": refused})
        result = plan.limit(min(max_rows + 1, _MAX_LIMIT)).collect()
    except StepFailed:
        raise
    except BaseException as exc:
        raise _as_step_failed(exc, sorted(frames)) from None
    if result.height > max_rows:
        raise StepFailed(
            "too_many_rows",
            f"The query returns more than {max_rows:,} rows; the limit is set by CHATFLOW_MAX_ROWS",
            details={"limit": max_rows, "setting": "CHATFLOW_MAX_ROWS"},
        )
    return result


def forbidden_node(plan: pl.LazyFrame) -> str | None:
    """The first node of ``plan`` that may read outside its inputs, or None."""
    traverser = plan._ldf.visit()
    pending = [traverser.get_node()]
    while pending:
        traverser.set_node(pending.pop())
        node = traverser.view_current_node()
        kind = type(node).__name__
        if kind == "MapFunction":
            function: Any = node.function
            name = function[0] if isinstance(function, tuple) else str(function)
            if name not in ALLOWED_MAP_FUNCTIONS:
                return f"MapFunction:{name}"
        elif kind not in ALLOWED_NODES:
            return kind
        pending.extend(traverser.get_inputs())
    return None


def _as_step_failed(exc: BaseException, tables: list[str]) -> StepFailed:
    # pyo3 turns a Rust panic into PanicException, a BaseException: a query must not take
    # the worker down with it.
    known = (pl.exceptions.PolarsError, ValueError, TypeError, OverflowError, OSError)
    if not isinstance(exc, known) and type(exc).__name__ != "PanicException":
        raise exc
    text = str(exc).strip()
    if any(marker in text.lower() for marker in _SEALED_ERRORS):
        return StepFailed("sql_forbidden", FORBIDDEN)
    first = text.split("\n\n")[0].strip() if text else type(exc).__name__
    return StepFailed(
        "invalid_sql",
        f"The query failed: {first[:500]}",
        details={"error": first[:2000], "tables": tables[:50]},
    )
