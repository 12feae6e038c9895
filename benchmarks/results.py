"""A bench run's figures: repetitions, ratios paired by repetition, targets, printed tables."""

from __future__ import annotations

import contextlib
import math
import operator
import os
import platform
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psutil

OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge}
TARGETS = (  # the figure or ratio's key, OPS, required, label
    ("up/floor", "<=", 1.5, "upload 100k x 10 xlsx to 201 vs gate + fastexcel read"),
    ("read/plain", "<=", 1.2, "read_table vs plain fastexcel read into polars"),
    ("write/plain", "<=", 1.2, "default xlsx engine via write_workbook vs plain library"),
    ("b/a", "<=", 1.3, "b/a (seed workflow via HTTP vs plain libraries)"),
    ("d/b", ">=", 4, "d/b (naive openpyxl vs service)"),
    ("fan2_p99", "<", 20, "paced 200 events/s to 100 subscribers over 2 API processes, p99 ms"),
    ("health_p99", "<", 50, "health p99 while 2 chats run (b) and uploads arrive, ms"),
)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100); NaN without values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return float(ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1])


def latency(values: Sequence[float]) -> dict[str, float]:
    """Latencies given in seconds, summarised in milliseconds."""
    return {
        "count": len(values),
        "p50_ms": percentile(values, 50) * 1000,
        "p99_ms": percentile(values, 99) * 1000,
        "max_ms": max(values) * 1000 if values else math.nan,
    }


def machine() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        model = next((ln.split(":", 1)[1].strip() for ln in cpuinfo if "model name" in ln), model)
    return {
        "cpu": model,
        "logical_cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


@dataclass
class Results:
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def add(self, key: str, label: str, unit: str, value: float) -> None:
        """Append one repetition's value of a figure."""
        entry = self.figures.setdefault(key, {"label": label, "unit": unit, "values": []})
        entry["values"].append(float(value))

    def ratio(self, key: str, label: str, numerator: str, denominator: str) -> None:
        """Repetition i of ``numerator`` over repetition i of ``denominator`` (same round)."""
        num = self.figures.get(numerator, {}).get("values", [])
        den = self.figures.get(denominator, {}).get("values", [])
        values = [n / d for n, d in zip(num, den, strict=False) if d]
        self.figures[key] = {"label": f"**ratio** {label}", "unit": "x", "values": values}

    def median(self, key: str) -> float:
        values = self.figures.get(key, {}).get("values")
        return statistics.median(values) if values else math.nan

    def markdown(self) -> str:
        """The tables to paste into docs/benchmarks.md: the targets, then every figure."""
        targets = []
        for key, op, required, label in TARGETS:
            m = self.median(key)
            met = "not measured" if math.isnan(m) else ("met" if OPS[op](m, required) else "missed")
            targets.append([label, f"{op} {required:g}", _fmt(m), met])
        figures = []
        for key, f in self.figures.items():
            v = f["values"] or [math.nan]
            label = f["label"].replace("    ", "&emsp;")  # an indented part of the row above
            figures.append([label, f["unit"], *map(_fmt, (self.median(key), min(v), max(v)))])
            figures[-1].append(str(len(f["values"])))
        return (
            "\n".join(
                [
                    table(["target", "required", "median", "status"], targets, "-::-"),
                    table(["figure", "unit", "median", "min", "max", "n"], figures, "--::::"),
                    *(f"- {note}" for note in self.notes),
                ]
            )
            + "\n"
        )


def table(head: list[str], rows: list[list[str]], align: str) -> str:
    """A markdown table; ``align`` has a character per column: ``:`` right-aligned, else left."""
    rule = "|".join("---:" if a == ":" else "---" for a in align)
    lines = [f"| {' | '.join(head)} |", f"|{rule}|"] + [f"| {' | '.join(r)} |" for r in rows]
    return "\n".join(lines) + "\n"


def _fmt(value: float) -> str:
    """A figure as the tables print it: ``-`` if missing, thousands without decimals."""
    if math.isnan(value):
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"
