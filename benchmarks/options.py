"""What one bench run measures: sizes, repetitions and the baseline, fixed for the whole run."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Options:
    reps: int = 3
    read_reps: int = 9  # a read takes about a second and its ratio is the noisiest figure
    rows: int = 100_000  # of the generated xlsx
    baseline: str = "fb0083b"  # the git ref measured beside this tree: before issue 14
    idle_health_s: float = 2.0
    scale_rows: tuple[int, ...] = (10_000, 100_000, 1_000_000)  # the scaling phase's sizes
    fanout_s: float = 10.0  # the cluster phase: seconds of paced messages
    fanout_burst: int = 2_000  # messages posted unpaced
    cluster_runs: int = 8  # runs on as many chats at once


FULL = Options()
# Every phase end to end in a minute or two: proves the code runs, measures nothing useful.
QUICK = Options(reps=1, read_reps=1, rows=2_000, idle_health_s=0.5, scale_rows=(2_000, 20_000))
QUICK = replace(QUICK, fanout_s=2.0, fanout_burst=300, cluster_runs=4)  # the cluster phase
