"""Dry runs: a workflow checked against the real input's columns on a sample, nothing stored.

A dry run takes its turn in the chat's run queue and runs each step in a worker process under
the step time and memory limits, exactly like a real run; only its answer differs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from chatflow.errors import Conflict, Invalid
from chatflow.failures import Cancelled
from chatflow.operations.registry import Operation, StepOutput
from chatflow.repositories import files as files_repo
from chatflow.runs.outcomes import RunError
from chatflow.runs.queue import RunHandle
from chatflow.runs.step_io import RunFiles
from chatflow.runs.step_jobs import run_step_remotely
from chatflow.runs.step_runner import StepRunner
from chatflow.runs.validation import Prepared, StepRequest, prepare_run
from chatflow.runtime import Runtime

SAMPLE_ROWS = 1000
PREVIEW_ROWS = 10


async def simulate_workflow(
    *,
    rt: Runtime,
    chat_id: str,
    owner: str | None,
    steps: list[StepRequest],
    input_name: str | None,
) -> dict[str, Any]:
    """Per step: columns out, rows on the sample and the first rows; 422 at the first failure."""
    prepared = await prepare_run(
        rt=rt, chat_id=chat_id, owner=owner, steps=steps, input_name=input_name
    )

    async def in_turn(handle: RunHandle) -> list[dict[str, Any]]:
        return await _describe_steps(rt, handle, prepared, steps)

    try:
        described = await rt.runs.run_in_turn(prepared.chat_id, in_turn)
    except Cancelled:
        raise Conflict(
            "the dry run was stopped: its chat was deleted or the server is shutting down",
            code="dry_run_stopped",
        ) from None
    source = prepared.input_file
    return {
        "input": {"filename": source.name, "version": source.version},
        "sample_rows": SAMPLE_ROWS,
        "steps": described,
    }


def _step(
    files: RunFiles,
    operation: Operation[Any],
    arguments: dict[str, Any],
    check_cancelled: Callable[[], None],
) -> tuple[StepOutput, dict[str, Any] | None]:
    return run_step_remotely(
        files,
        operation,
        arguments,
        report=lambda *_: None,
        check_cancelled=check_cancelled,
        describe_rows=PREVIEW_ROWS,
    )


async def _describe_steps(
    rt: Runtime, handle: RunHandle, prepared: Prepared, steps: list[StepRequest]
) -> list[dict[str, Any]]:
    async with rt.db.read() as session:
        latest = await files_repo.latest_versions(session, chat_id=prepared.chat_id)
    runner = rt.executor.steps
    files = runner.files_for(prepared.chat_id, prepared.input_file, latest, sample_rows=SAMPLE_ROWS)
    try:
        return await _describe_each(runner, handle, files, prepared, steps)
    finally:
        await runner.release(files)


async def _describe_each(
    runner: StepRunner,
    handle: RunHandle,
    files: RunFiles,
    prepared: Prepared,
    steps: list[StepRequest],
) -> list[dict[str, Any]]:
    described = []
    for index, ((operation, _), step) in enumerate(zip(prepared.validated, steps, strict=True)):
        try:
            _, about = await runner.run(
                handle,
                operation.name,
                functools.partial(_step, files, operation, step.arguments),
            )
        except RunError as exc:
            details = exc.details if isinstance(exc.details, dict) else {"details": exc.details}
            raise Invalid(
                f"steps[{index}] ({operation.name}): {exc.message}",
                code=exc.code,
                details={**details, "step_index": index},
            ) from None
        described.append({"index": index, **(about or {})})
    return described
