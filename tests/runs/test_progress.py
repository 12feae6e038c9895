"""The progress bridge on its own: run-level percentages that never go back, minor reports
throttled, updates delivered to the loop in order."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from chatflow.runs import progress
from chatflow.runs.progress import ProgressBridge, ProgressUpdate


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(progress.time, "monotonic", fake)
    return fake


def collect(total_steps: int, reports: Callable[[ProgressBridge], None]) -> list[ProgressUpdate]:
    """Run ``reports`` in a worker thread, as a step does; the updates the loop received."""

    async def scenario() -> list[ProgressUpdate]:
        bridge = ProgressBridge(asyncio.get_running_loop(), total_steps)
        # The thread's updates reach the loop (call_soon_threadsafe) before its completion does.
        await asyncio.to_thread(reports, bridge)
        bridge.close()
        updates = []
        while (update := await bridge.queue.get()) is not None:
            updates.append(update)
        return updates

    return asyncio.run(scenario())


def test_step_percentages_map_into_the_run_and_never_go_back(clock: Clock) -> None:
    def reports(bridge: ProgressBridge) -> None:
        bridge.begin_step(0, "excel/sort")
        bridge.report(0, "Starting")
        bridge.report(0, "Again at 0")  # no move: dropped
        bridge.report(50, "Half")
        bridge.report(30, "Back")  # backwards: dropped
        bridge.report(100, "Step done")
        bridge.begin_step(1, "excel/convert")
        bridge.report(0, "Second starts")  # 50 again: dropped
        bridge.report(150, "Clamped to 100")
        bridge.report(100, "Done twice")  # dropped

    updates = collect(2, reports)
    assert [(u.progress, u.step_progress, u.step, u.message) for u in updates] == [
        (0.0, 0.0, 1, "Starting"),
        (25.0, 50.0, 1, "Half"),
        (50.0, 100.0, 1, "Step done"),
        (100.0, 100.0, 2, "Clamped to 100"),
    ]
    assert [u.operation for u in updates] == ["excel/sort"] * 3 + ["excel/convert"]
    assert {u.total_steps for u in updates} == {2}


def test_minor_reports_closer_than_the_interval_are_dropped(clock: Clock) -> None:
    interval = progress.MINOR_INTERVAL_S

    def reports(bridge: ProgressBridge) -> None:
        bridge.begin_step(0, "excel/convert")
        bridge.report(10, "Writing")
        clock.now += interval / 2
        bridge.report(20, "chunk too soon", minor=True)  # dropped
        bridge.report(30, "major ones always pass")
        clock.now += interval / 2
        bridge.report(40, "chunk too soon after the major one", minor=True)  # dropped
        clock.now += interval
        bridge.report(50, "chunk after the interval", minor=True)

    updates = collect(1, reports)
    assert [(u.progress, u.message) for u in updates] == [
        (10.0, "Writing"),
        (30.0, "major ones always pass"),
        (50.0, "chunk after the interval"),
    ]


def test_progress_is_rounded_to_a_tenth_of_the_run(clock: Clock) -> None:
    def reports(bridge: ProgressBridge) -> None:
        bridge.begin_step(0, "excel/sort")
        bridge.report(0, "start")
        bridge.report(100 / 3, "a third of the first of three steps")

    updates = collect(3, reports)
    assert [u.progress for u in updates] == [0.0, 11.1]
