"""How a step ends early: a failure the user can fix, or a cancellation.

Kept free of polars and pydantic: the sandboxed upload inspection imports these in a fresh
interpreter for every upload, and each import there is paid per file.
"""

from __future__ import annotations

from typing import Any


class StepFailed(Exception):
    """A step failed for a reason the user can fix; ``code`` is stable, ``message`` is shown."""

    def __init__(self, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


class Cancelled(Exception):
    """Raised inside a step when its run was cancelled or the server is shutting down."""
