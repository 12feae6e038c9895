"""The load test's helpers: its input file, latency figures, RSS sampling and the report."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import platform
import threading
from datetime import datetime
from typing import Any

import psutil

from benchmarks.stats import percentile

RSS_SAMPLE_S = 0.1


# --------------------------------------------------------------------------- data and stats


def make_csv(rows: int) -> bytes:
    """A ``rows``-row csv with a header; ids keep their leading zeros."""
    cities = [("Lisbon", "1000-001"), ("Porto", "4000-007"), ("Braga", "4700-035")]
    cities += [("Faro", "8000-078"), ("Coimbra", "3000-033"), ("Evora", "7000-500")]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["customer_id", "first_name", "last_name", "email", "postal_code", "city"])
    for i in range(rows):
        city, postal = cities[i % len(cities)]
        first, last = f"First{i % 97}", f"Last{i % 89}"
        email = f"{first}.{last}.{i}@example.com".lower()
        writer.writerow([f"{i:06d}", first, last, email, postal, city])
    return buffer.getvalue().encode()


def latency(values: list[float]) -> dict[str, float | int | None]:
    """Seconds in, milliseconds out (None without values)."""
    if not values:
        return {"count": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    return {
        "count": len(values),
        "p50_ms": round(percentile(values, 50) * 1000, 2),
        "p99_ms": round(percentile(values, 99) * 1000, 2),
        "max_ms": round(max(values) * 1000, 2),
    }


def parse_timestamp(value: str) -> float:
    """Epoch seconds of an ISO 8601 UTC timestamp such as ``2025-01-01T12:00:00.123456Z``."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


class RssSampler:
    """Samples the RSS of a process and its children (recursively) in a thread."""

    def __init__(self, pid: int, interval_s: float = RSS_SAMPLE_S) -> None:
        self.process = psutil.Process(pid)
        self.interval_s = interval_s
        self.peak_total = 0
        self.peak_server = 0
        self.peak_children = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                own = self.process.memory_info().rss
                children = 0
                for child in self.process.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        children += child.memory_info().rss
                self.peak_server = max(self.peak_server, own)
                self.peak_children = max(self.peak_children, children)
                self.peak_total = max(self.peak_total, own + children)
                self.samples += 1
            self._stop.wait(self.interval_s)


# --------------------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": model,
        "logical_cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def table(result: dict[str, Any]) -> str:
    def ms(block: dict[str, Any]) -> str:
        if not block["count"]:
            return "no samples"
        p50, p99, n = block["p50_ms"], block["p99_ms"], block["count"]
        return f"p50 {p50:.1f} ms   p99 {p99:.1f} ms   (n={n})"

    events = result["events"]
    rss = result["server_rss"]
    rows = [
        ("duration", f"{result['elapsed_s']:.1f} s ({result['load_window_s']:.1f} s of load)"),
        ("load", f"{result['config']['chats']} chats x {result['config']['subscribers']} subs"),
        ("workflow", result["workflow"]),
        ("requests", f"{result['requests']}  ({result['requests_per_s']:.1f} req/s)"),
        ("runs completed", f"{result['runs_completed']}  ({result['runs_per_s']:.2f} runs/s)"),
        ("health latency", ms(result["health"])),
        ("upload latency", ms(result["upload"])),
        ("run latency (wait)", ms(result["run"])),
        ("event delivery", ms(result["event_delivery"])),
        (
            "events delivered",
            f"{events['deliveries_received']} of {events['deliveries_expected']} expected "
            f"({events['events_stored']} stored x subscribers)",
        ),
        ("events lost", str(events["lost"])),
        ("duplicated / out of order", f"{events['duplicated']} / {events['out_of_order']}"),
        ("errors", str(result["errors"])),
        ("server peak RSS", f"{rss['peak_total_mb']:.0f} MB (server {rss['peak_server_mb']:.0f})"),
        ("result", "PASS" if result["ok"] else "FAIL"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"  {name:<{width}}  {value}" for name, value in rows) + "\n"
