"""How runs end, as data: each ending's status, event and stored error, and every way a step
can fail mapped to its RunError.  The JSON is compared as text: clients see these bytes."""

from __future__ import annotations

import errno
import json
from typing import Any

import pytest

from chatflow.failures import StepFailed
from chatflow.runs import outcomes
from chatflow.runs.outcomes import RunError, error_for, timed_out
from chatflow.runs.worker_pool import ResourceLimit, WorkerCrashed


def text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def test_an_errors_json_is_code_message_details_then_step() -> None:
    bare = RunError("column_not_found", "no column 'x'")
    assert (
        text(bare.as_dict())
        == '{"code":"column_not_found","message":"no column \'x\'","step":null}'
    )
    detailed = RunError("too_many_rows", "too many", details={"limit": 5}).at_step(2)
    assert (
        text(detailed.as_dict())
        == '{"code":"too_many_rows","message":"too many","details":{"limit":5},"step":2}'
    )
    assert str(detailed) == "too many"
    assert bare.step is None  # at_step made a copy


@pytest.mark.parametrize(
    ("ending", "status", "event"),
    [
        (
            outcomes.failed(RunError("sql_forbidden", "only SELECT", 1), 0),
            "failed",
            '{"type":"workflow_failed","message":"Workflow execution failed: only SELECT",'
            '"error":{"code":"sql_forbidden","message":"only SELECT","step":1}}',
        ),
        (
            outcomes.stopped(2, interrupted=False),
            "cancelled",
            '{"type":"workflow_cancelled","message":"Workflow cancelled: the run was cancelled",'
            '"error":{"code":"cancelled","message":"the run was cancelled","step":3}}',
        ),
        (
            outcomes.stopped(0, interrupted=True),
            "interrupted",
            '{"type":"workflow_failed","message":"Workflow interrupted: the server shut down '
            'during the run","error":{"code":"interrupted","message":"the server shut down '
            'during the run","step":1}}',
        ),
        (
            outcomes.cancelled_before_start(),
            "cancelled",
            '{"type":"workflow_cancelled","message":"Workflow cancelled before it started",'
            '"error":{"code":"cancelled","message":"the run was cancelled","step":null}}',
        ),
        (
            outcomes.interrupted_by_stop(),
            "interrupted",
            '{"type":"workflow_failed","message":"Workflow interrupted: the server stopped '
            'before it finished","error":{"code":"interrupted","message":"the server stopped '
            'before this run finished; run it again","step":null}}',
        ),
        (
            outcomes.internal_error(),
            "failed",
            '{"type":"workflow_failed","message":"Workflow execution failed: the run failed '
            'unexpectedly; it has been logged","error":{"code":"internal_error","message":'
            '"the run failed unexpectedly; it has been logged","step":null}}',
        ),
        (
            outcomes.completed([{"filename": "a.xlsx"}], [None, {"rows": 3}]),
            "completed",
            '{"type":"workflow_completed","message":"Workflow execution completed successfully",'
            '"outputs":[{"filename":"a.xlsx"}],"results":[null,{"rows":3}]}',
        ),
    ],
)
def test_each_ending_has_its_status_and_event(
    ending: outcomes.Ending, status: str, event: str
) -> None:
    assert ending.status == status
    assert text(ending.event()) == event


def test_only_a_failure_marks_a_step_failed() -> None:
    assert outcomes.failed(RunError("x", "y", 2), 1).failed_index == 1
    assert outcomes.internal_error().failed_index == -1  # no step row has that index
    for ending in (
        outcomes.stopped(1, interrupted=False),
        outcomes.cancelled_before_start(),
        outcomes.interrupted_by_stop(),
        outcomes.completed([], []),
    ):
        assert ending.failed_index is None


@pytest.mark.parametrize(
    ("exc", "code", "message", "details"),
    [
        (
            StepFailed("column_not_found", "no column 'x'", {"column": "x"}),
            "column_not_found",
            "no column 'x'",
            {"column": "x"},
        ),
        (
            ResourceLimit(700),
            "resource_limit",
            "excel/sql needed more than the 700 MB memory limit of a step "
            "(CHATFLOW_STEP_MEMORY_MB); nothing else was affected",
            {"memory_mb": 700, "setting": "CHATFLOW_STEP_MEMORY_MB"},
        ),
        (
            WorkerCrashed("the worker process died (exit code -11)"),
            "worker_crashed",
            "excel/sql stopped: the worker process died (exit code -11)",
            None,
        ),
        (
            OSError(errno.ENOSPC, "No space left on device"),
            "disk_full",
            "the server's disk is full; the step's output was not kept",
            None,
        ),
        (
            OSError(errno.EACCES, "Permission denied"),
            "io_error",
            "excel/sql could not read or write a file on the server: Permission denied",
            None,
        ),
        (
            ValueError("bad"),
            "step_error",
            "excel/sql could not process the input: ValueError: bad",
            None,
        ),
    ],
)
def test_every_way_a_step_fails_becomes_a_run_error(
    exc: Exception, code: str, message: str, details: Any
) -> None:
    error = error_for(exc, "excel/sql", "run-1")
    assert (error.code, error.message, error.details, error.step) == (code, message, details, None)


def test_an_unexpected_exceptions_message_is_cut_at_500_characters() -> None:
    assert len(error_for(ValueError("x" * 1000), "excel/sql", "run-1").message) == 500


def test_the_time_limits_error_names_the_setting() -> None:
    error = timed_out("excel/sort", 2.5)
    assert error.as_dict() == {
        "code": "timeout",
        "message": "excel/sort took longer than the 2.5 s step time limit "
        "(CHATFLOW_STEP_TIMEOUT_S)",
        "step": None,
    }
