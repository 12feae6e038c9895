"""What one bench run measures: sizes and repetitions, fixed for the whole run."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Options:
    reps: int = 3
    read_reps: int = 9  # a read takes about a second and its ratio is the noisiest figure
    rows: int = 100_000  # of the generated xlsx
    idle_health_s: float = 2.0
    scale_rows: tuple[int, ...] = (10_000, 100_000, 1_000_000)  # the scaling phase's sizes
    fanout_s: float = 10.0  # the cluster phase: seconds of paced messages
    fanout_burst: int = 2_000  # messages posted unpaced
    cluster_runs: int = 8  # runs on as many chats at once


FULL = Options()
# Every phase end to end in a minute or two: proves the code runs, measures nothing useful.
QUICK = Options(1, 1, 2_000, 0.5, (2_000, 20_000), fanout_s=2.0, fanout_burst=300, cluster_runs=4)
