"""Executing a run: steps in the thread pool, progress over the broadcaster, state in the DB."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pydantic import ValidationError

from chatflow.db.models import StoredFile, utcnow
from chatflow.execution.pipeline import RunFiles, StoredRef
from chatflow.execution.progress import ProgressBridge
from chatflow.execution.queue import RunHandle
from chatflow.execution.step_jobs import run_step_remotely, write_final_remotely
from chatflow.operations.registry import (
    Cancelled,
    StepOutput,
    WrittenFile,
)
from chatflow.repositories import files as files_repo
from chatflow.repositories import runs as runs_repo
from chatflow.repositories.events import ChatGone
from chatflow.runtime import Runtime
from chatflow.services import events, messages, run_endings
from chatflow.services.step_runner import StepError, run_blocking
from chatflow.services.views import file_view

log = logging.getLogger(__name__)


class _RunFailed(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error["message"])
        self.error = error


async def execute_run(*, rt: Runtime, handle: RunHandle) -> None:
    """Run one queued run to a final state: completed, failed, cancelled or interrupted."""
    try:
        await _execute(rt, handle)
    except ChatGone:
        log.info("chat %s was deleted during run %s", handle.chat_id, handle.run_id)
    except Exception:
        # A bug must not leave the run 'running' forever: end it, visibly, as failed.
        log.exception("run %s failed outside a step", handle.run_id)
        async with rt.db.read() as session:
            run = await runs_repo.get(session, chat_id=handle.chat_id, run_id=handle.run_id)
        if run is not None and run.status in runs_repo.UNFINISHED:
            error = {
                "code": "internal_error",
                "message": "the run failed unexpectedly; it has been logged",
                "step": None,
            }
            await run_endings.finish_failed(rt, run, error, index=-1)


async def _execute(rt: Runtime, handle: RunHandle) -> None:
    async with rt.db.read() as session:
        run = await runs_repo.get(session, chat_id=handle.chat_id, run_id=handle.run_id)
        latest = await files_repo.latest_versions(session, chat_id=handle.chat_id)
        input_row = (
            await files_repo.get(
                session, chat_id=handle.chat_id, name=run.input_name, version=run.input_version
            )
            if run
            else None
        )
    if run is None:
        return
    async with rt.db.write() as session:
        if not await runs_repo.start_if_queued(session, run_id=run.id):
            return  # cancelled before it started
    chat_id, run_id, base = handle.chat_id, handle.run_id, handle.base_url
    total = len(run.steps)
    await events.emit(
        rt.broadcaster,
        chat_id=chat_id,
        run_id=run_id,
        type="workflow_started",
        message="Workflow execution started",
        total_steps=total,
        input={"filename": run.input_name, "version": run.input_version},
        steps=[step["operation"] for step in run.steps],
    )
    results: list[dict[str, Any] | None] = []
    step_index = 0
    files: RunFiles | None = None
    try:
        if input_row is None:
            raise _RunFailed(
                {
                    "code": "input_missing",
                    "message": f"input file {run.input_name!r} version {run.input_version} "
                    "was deleted before the run started",
                    "step": None,
                }
            )
        files = run_files(rt, chat_id, input_row, latest)
        bridge = ProgressBridge(asyncio.get_running_loop(), total)
        for step_index, step in enumerate(run.steps):
            output = await _run_one_step(rt, handle, bridge, files, step_index, step)
            results.append(output.result)
        if files.unwritten:
            # The final table is in no file yet: it is the run's output.
            last = run.steps[-1]["operation"]
            try:
                await run_blocking(
                    rt,
                    handle,
                    "writing the output",
                    lambda check: write_final_remotely(files, last, check_cancelled=check),
                )
            except StepError as exc:
                raise _RunFailed({**exc.error, "step": total}) from None
        rows = await _record_outputs(rt, chat_id, run_id, files.written)
    except _RunFailed as failure:
        await _discard(rt, files)
        await run_endings.finish_failed(rt, run, failure.error, step_index)
        return
    except Cancelled:
        await _discard(rt, files)
        reason = handle.cancel_reason or "cancelled"
        await run_endings.finish_stopped(rt, run, step_index, interrupted=reason != "cancelled")
        return
    except BaseException:
        await _discard(rt, files)
        raise
    outputs = [_output_summary(file_view(row, base)) for row in rows]
    async with rt.db.write() as session:
        await runs_repo.set_status(session, run_id=run_id, status="completed", finished_at=utcnow())
    summary = ", ".join(f"'{o['filename']}'" for o in outputs) or "no files"
    await events.emit(
        rt.broadcaster,
        chat_id=chat_id,
        run_id=run_id,
        type="workflow_completed",
        message="Workflow execution completed successfully",
        outputs=outputs,
        results=results,
    )
    await messages.add(
        rt=rt,
        chat_id=chat_id,
        role="system",
        text=f"Run {run_id} completed: produced {summary}",
        data={"kind": "run_completed", "run_id": run_id, "outputs": outputs},
    )


def run_files(
    rt: Runtime,
    chat_id: str,
    input_row: StoredFile,
    latest: list[StoredFile],
    *,
    sample_rows: int | None = None,
) -> RunFiles:
    """The StepIO of a run (or, with ``sample_rows``, of a dry run) over the chat's files."""
    return RunFiles(
        store=rt.store,
        chat_id=chat_id,
        input_name=input_row.name,
        input_path=rt.store.path(chat_id, input_row.storage_name),
        input_kind=input_row.kind,
        input_delimiter=input_row.delimiter,
        chat_files={
            row.name: StoredRef(rt.store.path(chat_id, row.storage_name), row.kind, row.delimiter)
            for row in latest
        },
        taken_names={row.name for row in latest},
        dry_run=sample_rows is not None,
        sample_rows=sample_rows,
        workers=rt.workers,
        xlsx_engine=rt.settings.xlsx_writer,
        limits=rt.settings.limits,
    )


async def _discard(rt: Runtime, files: RunFiles | None) -> None:
    if files is not None and files.written:
        await asyncio.get_running_loop().run_in_executor(rt.executor, files.discard_written)


def _output_summary(view: dict[str, Any]) -> dict[str, Any]:
    keys = ("filename", "version", "size", "sha256", "media_type", "columns", "row_count")
    return {**{key: view[key] for key in keys}, "download_url": view["download_url"]}


async def _run_one_step(
    rt: Runtime,
    handle: RunHandle,
    bridge: ProgressBridge,
    files: RunFiles,
    index: int,
    step: dict[str, Any],
) -> StepOutput:
    chat_id, run_id = handle.chat_id, handle.run_id
    operation = rt.registry.get(step["operation"])
    if operation is None:  # registry changed between submit and run (e.g. a restart)
        raise _RunFailed(
            {"code": "unknown_operation", "message": f"unknown operation {step['operation']!r}"}
            | {"step": index + 1}
        )
    try:
        operation.args_model.model_validate(
            step["arguments"], context=rt.settings.limits.as_context()
        )
    except ValidationError as exc:  # stored by an older version of the operation
        raise _RunFailed(
            {
                "code": "invalid_arguments",
                "message": f"the stored arguments of {operation.name} are no longer valid: "
                f"{exc.errors()[0]['msg']}",
                "step": index + 1,
            }
        ) from None
    async with rt.db.write() as session:
        await runs_repo.set_step(
            session, run_id=run_id, index=index, status="running", started_at=utcnow()
        )
    await events.emit(
        rt.broadcaster,
        chat_id=chat_id,
        run_id=run_id,
        type="step_started",
        message=f"Step {index + 1}/{bridge.total_steps} started: {operation.name}",
        step=index + 1,
        total_steps=bridge.total_steps,
        operation=operation.name,
    )
    bridge.begin_step(index, operation.name)
    pump = asyncio.create_task(_pump_progress(rt, chat_id, run_id, bridge))
    try:
        output, _ = await run_blocking(
            rt,
            handle,
            operation.name,
            lambda check: run_step_remotely(
                files, operation, step["arguments"], report=bridge.report, check_cancelled=check
            ),
        )
    except StepError as exc:
        raise _RunFailed({**exc.error, "step": index + 1}) from None
    finally:
        bridge.close()
        await pump
    async with rt.db.write() as session:
        await runs_repo.set_step(
            session,
            run_id=run_id,
            index=index,
            status="completed",
            finished_at=utcnow(),
            message=output.message,
            result=output.result,
        )
    await events.emit(
        rt.broadcaster,
        chat_id=chat_id,
        run_id=run_id,
        type="step_completed",
        message=f"Step {index + 1}/{bridge.total_steps} completed: {output.message}",
        step=index + 1,
        total_steps=bridge.total_steps,
        operation=operation.name,
        result=output.result,
        outputs=[written.name for written in output.files],
    )
    return output


async def _pump_progress(rt: Runtime, chat_id: str, run_id: str, bridge: ProgressBridge) -> None:
    """Publish the bridge's updates in order until it is closed."""
    while (update := await bridge.queue.get()) is not None:
        await events.emit(
            rt.broadcaster,
            chat_id=chat_id,
            run_id=run_id,
            type="progress",
            message=update.message,
            progress=update.progress,
            step_progress=update.step_progress,
            step=update.step,
            total_steps=update.total_steps,
            operation=update.operation,
        )


async def _record_outputs(
    rt: Runtime, chat_id: str, run_id: str, written: list[WrittenFile]
) -> list[StoredFile]:
    rows = []
    async with rt.db.write() as session:
        for item in written:
            row = StoredFile(
                chat_id=chat_id,
                name=item.name,
                version=await files_repo.next_version(session, chat_id=chat_id, name=item.name),
                storage_name=item.path.name,
                kind=item.kind,
                media_type=item.media_type,
                size=item.size,
                sha256=item.sha256,
                sheets=item.sheets,
                columns=item.columns,
                row_count=item.rows,
                source="output",
                run_id=run_id,
            )
            rows.append(await files_repo.insert(session, row=row))
    return rows
