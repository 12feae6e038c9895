"""What one bench run measures: sizes, counts and repetitions, fixed for the whole run."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Options:
    reps: int = 3
    rows: int = 100_000  # of the generated xlsx
    csv_bytes: int = 100_000_000  # the upload's csv
    subscribers: int = 100
    ws_events: int = 10_000  # per fan-out repetition, published by the server itself
    ws_paced_events: int = 2_000
    publishers: int = 16  # concurrent publishers when not paced
    paced_rate: float = 200.0  # events per second
    scaling_chats: tuple[int, ...] = (1, 4, 16)
    idle_health_s: float = 2.0


FULL = Options()
# Every phase end to end in a minute or two: proves the code runs, measures nothing useful.
QUICK = Options(
    reps=1,
    rows=2_000,
    csv_bytes=2_000_000,
    subscribers=10,
    ws_events=300,
    ws_paced_events=100,
    scaling_chats=(1, 2),
    idle_health_s=0.5,
)
