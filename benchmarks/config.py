"""What a bench run measures and where it writes: sizes, counts, repetitions, paths."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS_JSON = REPO / "benchmarks" / "results" / "latest.json"
DOC = REPO / "docs" / "benchmarks.md"
PLOT = REPO / "docs" / "benchmarks_ratios.png"

REPS = 3
WS_SUBSCRIBERS = (1, 10, 100)
WS_EVENTS = 10_000  # per repetition over the wire, published by the server itself
WS_PUBLISHERS = 16  # concurrent publishers on the server's loop
PACED_RATE = 200.0
PACED_WS_EVENTS = 2_000
BC_EVENTS = 10_000
BC_PACED_EVENTS = 1_000
SCALING_CHATS = (1, 4, 16)
INPUT = "orders.xlsx"


class _Run:
    reps = REPS  # what this run uses (``--reps``)


RUN = _Run()
PHASES = (
    "spreadsheet",
    "writer",
    "health",
    "upload",
    "fanout",
    "broadcaster",
    "scaling",
    "profile",
)

S1 = "1. Spreadsheet work, 100,000 x 10 xlsx"
S2 = "2. Event-loop health (GET /health every 20 ms)"
S3 = "3. WebSocket fan-out"
S4 = "4. Upload of a ~100 MB csv"
S5 = "5. Scaling: chats running the 100k workflow at once"
