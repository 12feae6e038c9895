"""The step thread count's setting and its old name, which deployments may still set."""

from __future__ import annotations

import pytest

from chatflow.settings import Settings


def test_step_threads_reads_its_variable_and_the_old_workers_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CHATFLOW_STEP_THREADS", raising=False)
    monkeypatch.setenv("CHATFLOW_WORKERS", "3")
    assert Settings().step_threads == 3
    monkeypatch.setenv("CHATFLOW_STEP_THREADS", "5")
    assert Settings().step_threads == 5  # the new name wins
    assert Settings(step_threads=2).step_threads == 2
