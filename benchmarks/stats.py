"""Small statistics helpers shared by the measurements."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of ``values``; NaN when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return float(ordered[rank - 1])


def latency_summary(values: Sequence[float]) -> dict[str, float | int]:
    """p50, p99 and max of latencies given in seconds, reported in milliseconds."""
    return {
        "count": len(values),
        "p50_ms": percentile(values, 50) * 1000,
        "p99_ms": percentile(values, 99) * 1000,
        "max_ms": (max(values) * 1000) if values else math.nan,
    }


def summarize(values: Iterable[float]) -> dict[str, Any]:
    """Median, min and max of repeated measurements (the raw values are kept too)."""
    data = [float(v) for v in values]
    if not data:
        return {"n": 0, "median": math.nan, "min": math.nan, "max": math.nan, "values": []}
    return {
        "n": len(data),
        "median": statistics.median(data),
        "min": min(data),
        "max": max(data),
        "values": data,
    }
