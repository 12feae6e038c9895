"""Header names by one policy for every format: stripped, blanks named, repeats numbered."""

from __future__ import annotations

from collections.abc import Sequence


def unique_headers(raw: Sequence[str | None]) -> list[str]:
    """Header names by the shared policy: stripped, blanks -> column_N, repeats -> name_2, ..."""
    cleaned = [(h or "").strip() for h in raw]
    reserved = {c for c in cleaned if c}  # a real header keeps its name over a generated one
    taken: set[str] = set()
    next_suffix: dict[str, int] = {}
    names: list[str] = []
    for position, given in enumerate(cleaned, start=1):
        base = given or f"column_{position}"
        name = base
        if name in taken or (not given and name in reserved):
            k = next_suffix.get(base, 2)
            while f"{base}_{k}" in taken or f"{base}_{k}" in reserved:
                k += 1
            name = f"{base}_{k}"
            next_suffix[base] = k + 1
        taken.add(name)
        names.append(name)
    return names
