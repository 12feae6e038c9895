"""What one step may cost: the bounds every operation checks before it materialises a result.

The server builds one ``Limits`` from its settings and hands it to argument validation (as the
pydantic validation context) and to every step (``ctx.limits``); the defaults here are the
settings' defaults, so tools and tests without a server get the same bounds.
"""

from __future__ import annotations

from dataclasses import dataclass

XLSX_MAX_DATA_ROWS = 1_048_575  # an xlsx sheet's 1,048,576 rows, less the header


@dataclass(frozen=True)
class Limits:
    """Bounds on a step's arguments and results (see Settings for each one's variable)."""

    # Rows a step may produce; joins, pivots, unpivots, splits and appends estimate their
    # output before building it and refuse above this with ``too_many_rows``.
    max_rows: int = 4 * XLSX_MAX_DATA_ROWS
    # Characters in any one string argument: values, templates, patterns, names.
    max_text_chars: int = 10_000
    # Characters in an excel/sql query.
    max_query_chars: int = 20_000

    def as_context(self) -> dict[str, Limits]:
        """The pydantic validation context that carries these limits to argument models."""
        return {"limits": self}
