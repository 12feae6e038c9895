"""How a run ends (completed, failed, cancelled, interrupted): its status, stored error, event.

Every way a run or one of its steps can fail is a ``RunError``; ``as_dict`` is the one place
its JSON (the run's ``error``, ``workflow_failed.error``) is shaped.  An ``Ending`` is what
the run's final status change writes and announces.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

from chatflow.failures import StepFailed
from chatflow.runs.worker_pool import ResourceLimit, WorkerCrashed
from chatflow.storage import DISK_FULL

log = logging.getLogger(__name__)


@dataclass(eq=False)
class RunError(Exception):
    """Why a run (or one of its steps) did not complete; ``step`` is 1-based, None for the run."""

    code: str
    message: str
    step: int | None = None
    details: Any = None

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def at_step(self, step: int | None) -> RunError:
        """The same error, attributed to ``step``."""
        return dataclasses.replace(self, step=step)

    def as_dict(self) -> dict[str, Any]:
        """The stored ``error`` of the run and its step, as the API and events show it."""
        shaped: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            shaped["details"] = self.details
        shaped["step"] = self.step
        return shaped


def timed_out(label: str, limit_s: float) -> RunError:
    return RunError(
        "timeout",
        f"{label} took longer than the {limit_s:g} s step time limit (CHATFLOW_STEP_TIMEOUT_S)",
    )


def error_for(exc: Exception, label: str, run_id: str) -> RunError:
    """The RunError for an exception that ended ``label`` (a step, or writing the output)."""
    if isinstance(exc, StepFailed):
        return RunError(exc.code, exc.message, details=exc.details)
    if isinstance(exc, ResourceLimit):
        return RunError(
            "resource_limit",
            f"{label} needed more than the {exc.memory_mb} MB memory limit of a step "
            "(CHATFLOW_STEP_MEMORY_MB); nothing else was affected",
            details={"memory_mb": exc.memory_mb, "setting": "CHATFLOW_STEP_MEMORY_MB"},
        )
    if isinstance(exc, WorkerCrashed):
        log.error("the worker running %s for run %s died: %s", label, run_id, exc)
        return RunError("worker_crashed", f"{label} stopped: {exc}")
    if isinstance(exc, OSError):
        if exc.errno in DISK_FULL:
            return RunError(
                "disk_full", "the server's disk is full; the step's output was not kept"
            )
        log.warning("step %s of run %s: %s", label, run_id, exc)
        return RunError(
            "io_error",
            f"{label} could not read or write a file on the server: {exc.strerror or exc}",
        )
    log.error("%s of run %s raised", label, run_id, exc_info=exc)
    return RunError(
        "step_error", f"{label} could not process the input: {type(exc).__name__}: {exc}"[:500]
    )


# The event types an Ending can have: a waiter wakes on these, not on every progress event.
ENDING_EVENTS = frozenset({"workflow_completed", "workflow_failed", "workflow_cancelled"})


@dataclass(frozen=True)
class Ending:
    """A run's final status change: the status, the event announcing it, the step that failed.

    ``failed_index`` (0-based) is the step row marked failed with the error; every step still
    pending or running is marked skipped.
    """

    status: str
    event_type: str
    message: str
    error: RunError | None = None
    failed_index: int | None = None
    payload: dict[str, Any] = field(default_factory=dict)

    def event(self) -> dict[str, Any]:
        """The event's ``type``, ``message`` and fields, in the order they are sent."""
        fields: dict[str, Any] = {"type": self.event_type, "message": self.message}
        if self.error is not None:
            fields["error"] = self.error.as_dict()
        return {**fields, **self.payload}


def completed(outputs: list[dict[str, Any]], results: list[Any]) -> Ending:
    return Ending(
        "completed",
        "workflow_completed",
        "Workflow execution completed successfully",
        payload={"outputs": outputs, "results": results},
    )


def failed(error: RunError, index: int) -> Ending:
    """Step ``index`` (0-based; -1: none) failed with ``error``."""
    return Ending(
        "failed",
        "workflow_failed",
        f"Workflow execution failed: {error.message}",
        error,
        failed_index=index,
    )


def stopped(index: int, *, interrupted: bool) -> Ending:
    """The run stopped during step ``index``: cancelled, or cut short by a shutdown."""
    if interrupted:
        error = RunError("interrupted", "the server shut down during the run", index + 1)
        return Ending(
            "interrupted", "workflow_failed", f"Workflow interrupted: {error.message}", error
        )
    error = RunError("cancelled", "the run was cancelled", index + 1)
    return Ending("cancelled", "workflow_cancelled", f"Workflow cancelled: {error.message}", error)


def cancelled_before_start() -> Ending:
    error = RunError("cancelled", "the run was cancelled")
    return Ending("cancelled", "workflow_cancelled", "Workflow cancelled before it started", error)


def interrupted_by_stop() -> Ending:
    """A run the server stopped before it finished (found at start-up, or never started)."""
    error = RunError("interrupted", "the server stopped before this run finished; run it again")
    return Ending(
        "interrupted",
        "workflow_failed",
        "Workflow interrupted: the server stopped before it finished",
        error,
    )


def interrupted_by_lost_worker() -> Ending:
    """A run whose worker process stopped heartbeating (killed, or its machine gone)."""
    error = RunError("interrupted", "the worker running this run stopped; run it again")
    return Ending(
        "interrupted",
        "workflow_failed",
        "Workflow interrupted: the worker running it stopped",
        error,
    )


def internal_error() -> Ending:
    """A bug outside any step: the run must not stay 'running' forever."""
    error = RunError("internal_error", "the run failed unexpectedly; it has been logged")
    return failed(error, -1)
