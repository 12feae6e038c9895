"""What one step may cost: the bounds every operation checks before it materialises a result.

The server builds one ``Limits`` from its settings and hands it to argument validation (as the
pydantic validation context) and to every step (``ctx.limits``); the defaults here are the
settings' defaults, so tools and tests without a server get the same bounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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


# Items in any one list or object argument: an xlsx sheet's column count, so a list naming
# every column of the widest sheet still fits.
MAX_ITEMS = 16_384
_SHOWN_KEY = 40  # characters of an over-long key shown in an error's location
_INT64 = (-(2**63), 2**63 - 1)

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Oversized:
    """An argument past its bound: where it is, what kind of bound, and a message."""

    loc: Loc
    type: str  # "text_too_long" or "too_many_items"
    message: str


def oversized(arguments: dict[str, Any], limits: Limits) -> Oversized | None:
    """The first string, key, number, list or object of ``arguments`` past its bound, in the
    order given; a top-level ``query`` may have ``max_query_chars``, other text
    ``max_text_chars``; whole numbers must fit in 64 bits (polars cannot hold more).

    Walked with an explicit stack: arguments nested thousands deep must not recurse.
    """
    stack: list[tuple[Loc, Any]] = [((), arguments)]
    while stack:
        loc, value = stack.pop()
        found = _scalar_problem(loc, value, limits)
        if found is not None:
            return found
        if isinstance(value, dict | list | tuple):
            if len(value) > MAX_ITEMS:
                message = f"at most {MAX_ITEMS} items; {len(value)} given"
                return Oversized(loc, "too_many_items", message)
            if isinstance(value, dict):
                for key in value:
                    if isinstance(key, str) and len(key) > limits.max_text_chars:
                        where = (*loc, key[:_SHOWN_KEY] + "…")
                        found = _too_long(where, len(key), limits.max_text_chars)
                        return Oversized(found.loc, found.type, "this key: " + found.message)
                items: list[tuple[Any, Any]] = list(value.items())
            else:
                items = list(enumerate(value))
            stack.extend(((*loc, key), item) for key, item in reversed(items))
    return None


def _scalar_problem(loc: Loc, value: Any, limits: Limits) -> Oversized | None:
    if isinstance(value, str):
        query = loc == ("query",)
        cap = limits.max_query_chars if query else limits.max_text_chars
        if len(value) > cap:
            setting = "CHATFLOW_MAX_QUERY_CHARS" if query else "CHATFLOW_MAX_TEXT_CHARS"
            return _too_long(loc, len(value), cap, setting)
    elif (
        isinstance(value, int)
        and not isinstance(value, bool)
        and not _INT64[0] <= value <= _INT64[1]
    ):
        message = (
            f"whole numbers must lie between {_INT64[0]} and {_INT64[1]}; write a larger one "
            "with a decimal point or exponent (1e30)"
        )
        return Oversized(loc, "number_too_large", message)
    return None


def _too_long(
    loc: Loc, length: int, cap: int, setting: str = "CHATFLOW_MAX_TEXT_CHARS"
) -> Oversized:
    message = f"at most {cap} characters ({setting}); {length} given"
    return Oversized(loc, "text_too_long", message)
