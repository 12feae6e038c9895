"""Which upload limit applies to a file, and which one a refusal hit, named by its setting.

The inspection child only sees numbers (``--max-cells``); the server knows which setting each
number came from, so a refusal's message and details name the ``CHATFLOW_*`` variable that
raises it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatflow.settings import Settings
from chatflow.spreadsheets.sniffing import sniff_container


@dataclass(frozen=True)
class Limit:
    """One setting's value, and what it bounds (a phrase read after the value)."""

    field: str
    value: int | float
    what: str

    @property
    def variable(self) -> str:
        return f"CHATFLOW_{self.field.upper()}"

    def sentence(self) -> str:
        value = f"{self.value:,}" if isinstance(self.value, int) else f"{self.value:g}"
        return f"The limit is {value} {self.what}; the setting {self.variable} raises it."

    def details(self) -> dict[str, Any]:
        return {"setting": self.variable, "limit": self.value}


def cell_limit(settings: Settings, path: Path, kind: str) -> Limit:
    """The cell limit for this upload: a workbook's, or a csv's unless its bytes are a
    workbook's (the inspection then reads it as one, as ``inspection.inspect_file`` does)."""
    if kind == "csv" and sniff_container(path) not in ("zip", "ole"):
        return Limit("max_csv_cells", settings.max_csv_cells, "cells in a csv file")
    return Limit("max_workbook_cells", settings.max_workbook_cells, "cells in a workbook")


def limit_hit(settings: Settings, code: str, details: Any, cells: Limit) -> Limit | None:
    """The limit behind a refusal with ``code``; None when no setting governs it (a refusal
    for what the file is, or a fixed bound such as an inflation ratio)."""
    if code == "too_many_cells":
        return cells
    budget = isinstance(details, dict) and details.get("limit") == "max_uncompressed_mb"
    if code == "zip_bomb" and budget:
        return Limit("max_uncompressed_mb", settings.max_uncompressed_mb, "MB inflated")
    if code == "file_too_complex":
        return Limit("inspect_memory_mb", settings.inspect_memory_mb, "MB of memory to inspect")
    if code == "inspection_timeout":
        return Limit("inspect_timeout_s", settings.inspect_timeout_s, "s to inspect a file")
    return None
