"""What one bench run measures: sizes, counts and repetitions, fixed for the whole run."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Options:
    reps: int = 3
    rows: int = 100_000  # of the generated xlsx
    baseline: str = "fb0083b"  # the git ref measured beside this tree: before issue 14
    subscribers: int = 100
    ws_events: int = 10_000  # per fan-out repetition, published by the server itself
    ws_paced_events: int = 2_000
    publishers: int = 16  # concurrent publishers when not paced
    paced_rate: float = 200.0  # events per second
    idle_health_s: float = 2.0


FULL = Options()
# Every phase end to end in a minute or two: proves the code runs, measures nothing useful.
QUICK = Options(
    reps=1,
    rows=2_000,
    subscribers=10,
    ws_events=300,
    ws_paced_events=100,
    idle_health_s=0.5,
)
