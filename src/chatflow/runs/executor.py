"""The async side of a run: its steps one by one, their status and events, and how it ends."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from chatflow import logs
from chatflow.broadcaster import Broadcaster
from chatflow.db.engine import Database
from chatflow.db.models import Run, StoredFile, utcnow
from chatflow.failures import Cancelled
from chatflow.metrics import Metrics
from chatflow.operations.registry import Operation, Registry, StepOutput, WrittenFile
from chatflow.repositories import files as files_repo
from chatflow.repositories import runs as runs_repo
from chatflow.repositories.events import ChatGone
from chatflow.runs import outcomes
from chatflow.runs.outcomes import RunError
from chatflow.runs.progress import ProgressBridge
from chatflow.runs.queue import RunHandle
from chatflow.runs.states import RunStates
from chatflow.runs.step_io import RunFiles
from chatflow.runs.step_jobs import run_step_remotely, write_final_remotely
from chatflow.runs.step_runner import StepRunner
from chatflow.services import events
from chatflow.services.views import file_view

log = logging.getLogger(__name__)


@dataclass
class _RunState:
    """Where one run is: the step under way (0-based) and the results so far."""

    handle: RunHandle
    run: Run
    bridge: ProgressBridge
    index: int = 0
    results: list[dict[str, Any] | None] = field(default_factory=list)
    files: RunFiles | None = None


@dataclass
class RunExecutor:
    """Runs queued runs to a final state; ``execute`` is the run queue's callback."""

    db: Database
    broadcaster: Broadcaster
    registry: Registry
    steps: StepRunner
    states: RunStates
    metrics: Metrics | None = None

    async def execute(self, handle: RunHandle) -> None:
        """Run one queued run to a final state: completed, failed, cancelled or interrupted."""
        try:
            with logs.bind(run_id=handle.run_id, chat_id=handle.chat_id):
                await self._execute(handle)
        except ChatGone:
            log.info("chat %s was deleted during run %s", handle.chat_id, handle.run_id)
        except Exception:
            # A bug must not leave the run 'running' forever: end it, visibly, as failed.
            log.exception("run %s failed outside a step", handle.run_id)
            await self._end_failed(handle.chat_id, handle.run_id, outcomes.internal_error())

    async def _execute(self, handle: RunHandle) -> None:
        async with self.db.read() as session:
            run = await runs_repo.get(session, chat_id=handle.chat_id, run_id=handle.run_id)
            latest = await files_repo.latest_versions(session, chat_id=handle.chat_id)
            input_row = (
                await files_repo.get(
                    session, chat_id=run.chat_id, name=run.input_name, version=run.input_version
                )
                if run
                else None
            )
        if run is None or not await self.states.start(run):
            return
        state = _RunState(handle, run, ProgressBridge(asyncio.get_running_loop(), len(run.steps)))
        try:
            await self._end(state, input_row, latest)
        finally:
            await self.steps.release(state.files)

    async def _end(
        self, state: _RunState, input_row: StoredFile | None, latest: list[StoredFile]
    ) -> None:
        """Produce the run's outputs and end it: completed, failed, cancelled or interrupted."""
        run, handle = state.run, state.handle
        try:
            rows = await self._produce(state, input_row, latest)
        except RunError as error:
            await self.steps.discard(state.files)
            await self._end_failed(run.chat_id, run.id, outcomes.failed(error, state.index))
            return
        except Cancelled:
            await self.steps.discard(state.files)
            interrupted = (handle.cancel_reason or "cancelled") != "cancelled"
            ending = outcomes.stopped(state.index, interrupted=interrupted)
            await self.states.end(chat_id=run.chat_id, run_id=run.id, ending=ending)
            return
        except BaseException:
            await self.steps.discard(state.files)
            raise
        await self._complete(state, rows)

    async def _produce(
        self, state: _RunState, input_row: StoredFile | None, latest: list[StoredFile]
    ) -> list[StoredFile]:
        """Run every step and write the final table; the output files, recorded."""
        run = state.run
        if input_row is None:
            raise RunError(
                "input_missing",
                f"input file {run.input_name!r} version {run.input_version} "
                "was deleted before the run started",
            )
        files = state.files = self.steps.files_for(run.chat_id, input_row, latest, run_id=run.id)
        for index, step in enumerate(run.steps):
            state.index = index
            output = await self._run_step(state, files, step)
            state.results.append(output.result)
        if files.unwritten:
            # The final table is in no file yet: it is the run's output.
            last = run.steps[-1]["operation"]
            try:
                await self.steps.run(
                    state.handle,
                    "writing the output",
                    lambda check: write_final_remotely(files, last, check_cancelled=check),
                )
            except RunError as error:
                raise error.at_step(len(run.steps)) from None
        await self.steps.release(files)  # before the run ends: no temp file outlives it
        if not await self.states.seal(run.id) or state.handle.cancel.is_set():
            # The last chance to honour a cancel: a step that ended without reaching a check
            # after the request must not make the run complete.  Sealing is a conditional
            # update, so from here on a cancel from any process is refused (409).
            raise Cancelled()
        return await self._record_outputs(run, files.written)

    async def _complete(self, state: _RunState, rows: list[StoredFile]) -> None:
        run = state.run
        outputs = [_output_summary(file_view(row, state.handle.base_url)) for row in rows]
        summary = ", ".join(f"'{o['filename']}'" for o in outputs) or "no files"
        await self.states.end(
            chat_id=run.chat_id,
            run_id=run.id,
            ending=outcomes.completed(outputs, state.results),
            note=(
                f"Run {run.id} completed: produced {summary}",
                {"kind": "run_completed", "run_id": run.id, "outputs": outputs},
            ),
        )

    async def _end_failed(self, chat_id: str, run_id: str, ending: outcomes.Ending) -> None:
        """End the run as failed, and say so in the chat's transcript."""
        assert ending.error is not None
        error = ending.error.as_dict()
        await self.states.end(
            chat_id=chat_id,
            run_id=run_id,
            ending=ending,
            note=(
                f"Run {run_id} failed: {error['message']}",
                {"kind": "run_failed", "run_id": run_id, "error": error},
            ),
        )

    def _operation(self, index: int, step: dict[str, Any]) -> Operation[Any]:
        """The step's operation, its stored arguments still valid; RunError otherwise."""
        operation = self.registry.get(step["operation"])
        if operation is None:  # registry changed between submit and run (e.g. a restart)
            raise RunError(
                "unknown_operation", f"unknown operation {step['operation']!r}", index + 1
            )
        try:
            operation.args_model.model_validate(
                step["arguments"], context=self.steps.settings.limits.as_context()
            )
        except ValidationError as exc:  # stored by an older version of the operation
            raise RunError(
                "invalid_arguments",
                f"the stored arguments of {operation.name} are no longer valid: "
                f"{exc.errors()[0]['msg']}",
                index + 1,
            ) from None
        return operation

    async def _run_step(
        self, state: _RunState, files: RunFiles, step: dict[str, Any]
    ) -> StepOutput:
        index, run, bridge = state.index, state.run, state.bridge
        operation = self._operation(index, step)
        numbered = {"step": index + 1, "total_steps": bridge.total_steps}
        await self.states.step(
            chat_id=run.chat_id,
            run_id=run.id,
            index=index,
            values={"status": "running", "started_at": utcnow()},
            type="step_started",
            message=f"Step {index + 1}/{bridge.total_steps} started: {operation.name}",
            **numbered,
            operation=operation.name,
        )
        output = await self._step_work(state, files, operation, step["arguments"])
        await self.states.step(
            chat_id=run.chat_id,
            run_id=run.id,
            index=index,
            values={
                "status": "completed",
                "finished_at": utcnow(),
                "message": output.message,
                "result": output.result,
            },
            type="step_completed",
            message=f"Step {index + 1}/{bridge.total_steps} completed: {output.message}",
            **numbered,
            operation=operation.name,
            result=output.result,
            outputs=[written.name for written in output.files],
        )
        return output

    async def _step_work(
        self, state: _RunState, files: RunFiles, operation: Operation[Any], arguments: Any
    ) -> StepOutput:
        """The step itself in a worker, its progress published while it runs."""
        bridge = state.bridge
        bridge.begin_step(state.index, operation.name)
        pump = asyncio.create_task(self._pump_progress(state.run, bridge))
        began = time.monotonic()
        try:
            output, _ = await self.steps.run(
                state.handle,
                operation.name,
                lambda check: run_step_remotely(
                    files, operation, arguments, report=bridge.report, check_cancelled=check
                ),
            )
        except RunError as error:
            raise error.at_step(state.index + 1) from None
        finally:
            bridge.close()
            await pump
        if self.metrics is not None:
            self.metrics.step_done(operation.name, time.monotonic() - began)
        return output

    async def _pump_progress(self, run: Run, bridge: ProgressBridge) -> None:
        """Publish the bridge's updates in order until it is closed."""
        while (update := await bridge.queue.get()) is not None:
            await events.emit(
                self.broadcaster,
                chat_id=run.chat_id,
                run_id=run.id,
                type="progress",
                message=update.message,
                progress=update.progress,
                step_progress=update.step_progress,
                step=update.step,
                total_steps=update.total_steps,
                operation=update.operation,
            )

    async def _record_outputs(self, run: Run, written: list[WrittenFile]) -> list[StoredFile]:
        rows = [
            StoredFile(
                chat_id=run.chat_id,
                name=item.name,
                storage_name=item.path.name,
                kind=item.kind,
                media_type=item.media_type,
                size=item.size,
                sha256=item.sha256,
                sheets=item.sheets,
                columns=item.columns,
                row_count=item.rows,
                source="output",
                run_id=run.id,
            )
            for item in written
        ]
        async with self.db.write() as session:
            inserted = await files_repo.insert_versions(session, chat_id=run.chat_id, rows=rows)
        if inserted is None:
            raise ChatGone(run.chat_id)
        return inserted


def _output_summary(view: dict[str, Any]) -> dict[str, Any]:
    keys = ("filename", "version", "size", "sha256", "media_type", "columns", "row_count")
    return {**{key: view[key] for key in keys}, "download_url": view["download_url"]}
