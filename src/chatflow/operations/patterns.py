"""Patterns given in arguments: regular expressions (polars/Rust syntax) and strftime formats.

Checked when the workflow is submitted, so a bad pattern never starts a run.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import polars as pl
from pydantic_core import PydanticCustomError

from chatflow.failures import StepFailed

# chrono's strftime directives (what polars parses with), with optional padding flags.
_DIRECTIVE = re.compile(r"%[-_0]?(?:[YCymbBhdeaAwuUWGgVjDxFvHkIlPpMSRTXrZzstn%+]|\.?[369]?f|:z)")
_REGEX_META = set("\\.+*?()|[]{}^$#&-~")


def regex_escape(text: str) -> str:
    """``text`` as a regex matching itself literally (Rust regex syntax)."""
    return "".join(f"\\{c}" if c in _REGEX_META else c for c in text)


def check_regex(pattern: str, *, allow_empty_match: bool = True) -> str:
    """Validator body: ``pattern`` must compile as a polars (Rust) regex.

    Raises a pydantic error of type ``invalid_regex``, so a bad pattern is refused when the
    workflow is submitted.
    """
    probe = pl.Series("probe", [""], dtype=pl.String)
    try:
        matches_empty = bool(probe.str.contains(pattern).item())
    except pl.exceptions.PolarsError as exc:
        reason = str(exc).split("\n\nThis error occurred", 1)[0]
        raise PydanticCustomError(
            "invalid_regex", "invalid regular expression: {reason}", {"reason": reason}
        ) from None
    if matches_empty and not allow_empty_match:
        raise PydanticCustomError(
            "invalid_regex", "the regular expression must not match empty text", {}
        )
    return pattern


@contextlib.contextmanager
def regex_errors(pattern: str) -> Iterator[None]:
    """Turn a regex polars refuses while running (rare once validated) into invalid_regex."""
    try:
        yield
    except pl.exceptions.ComputeError as exc:
        if "regex" not in str(exc):
            raise
        reason = str(exc).split("\n\nThis error occurred", 1)[0]
        raise StepFailed(
            "invalid_regex",
            f"Invalid regular expression {pattern!r}: {reason}",
            details={"pattern": pattern},
        ) from None


def check_strftime(fmt: str) -> str:
    """Validator body: a strftime-style format made of known % directives (at least one)."""
    if "%" not in fmt:
        raise ValueError("format needs % directives, e.g. '%d/%m/%Y'")
    unknown = _DIRECTIVE.sub("", fmt)
    if "%" in unknown:
        raise ValueError(f"format {fmt!r} has an unknown % directive")
    return fmt
