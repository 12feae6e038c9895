"""Checks shared by operations (and by run validation before a run starts)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from chatflow.operations.registry import StepFailed

_LISTED_COLUMNS = 50  # a message listing 16,000 available columns helps nobody


def column_not_found(missing: Sequence[str], available: Sequence[str]) -> StepFailed:
    """The one error for columns that are not there, naming them and listing what exists."""
    names = ", ".join(f"'{c}'" for c in missing)
    noun = "Column" if len(missing) == 1 else "Columns"
    listed = ", ".join(available[:_LISTED_COLUMNS]) or "(none)"
    if len(available) > _LISTED_COLUMNS:
        listed += f", ... ({len(available)} in all)"
    message = f"{noun} {names} not found; available columns: {listed}"
    hints = _near_misses(missing, available)
    if hints:
        message += f" (did you mean {', '.join(repr(h) for h in hints)}?)"
    return StepFailed(
        "column_not_found",
        message,
        details={"missing": list(missing), "available": list(available)},
    )


def _near_misses(missing: Sequence[str], available: Sequence[str]) -> list[str]:
    """Available names equal to a missing one apart from case and surrounding spaces."""
    folded = {a.strip().casefold(): a for a in available}
    return [folded[m.strip().casefold()] for m in missing if m.strip().casefold() in folded]


def require_columns(available: Sequence[str], needed: Iterable[str]) -> None:
    """Raise ``column_not_found`` unless every needed column is available."""
    present = set(available)
    missing = [c for c in dict.fromkeys(needed) if c not in present]
    if missing:
        raise column_not_found(missing, available)
