"""How runs end when they do not complete: failed, cancelled, or interrupted by a stop."""

from __future__ import annotations

from typing import Any

from chatflow.db.models import Run, utcnow
from chatflow.repositories import runs as runs_repo
from chatflow.runtime import Runtime
from chatflow.services import events, messages


async def finish_failed(rt: Runtime, run: Run, error: dict[str, Any], index: int) -> None:
    async with rt.db.write() as session:
        await runs_repo.set_step(
            session, run_id=run.id, index=index, status="failed", error=error, finished_at=utcnow()
        )
        await runs_repo.skip_pending_steps(session, run_id=run.id)
        await runs_repo.set_status(
            session, run_id=run.id, status="failed", error=error, finished_at=utcnow()
        )
    await events.emit(
        rt.broadcaster,
        chat_id=run.chat_id,
        run_id=run.id,
        type="workflow_failed",
        message=f"Workflow execution failed: {error['message']}",
        error=error,
    )
    await messages.add(
        rt=rt,
        chat_id=run.chat_id,
        role="system",
        text=f"Run {run.id} failed: {error['message']}",
        data={"kind": "run_failed", "run_id": run.id, "error": error},
    )


async def finish_stopped(rt: Runtime, run: Run, index: int, *, interrupted: bool) -> None:
    status = "interrupted" if interrupted else "cancelled"
    error = {
        "code": status,
        "message": "the server shut down during the run"
        if interrupted
        else "the run was cancelled",
        "step": index + 1,
    }
    async with rt.db.write() as session:
        await runs_repo.skip_pending_steps(session, run_id=run.id)
        await runs_repo.set_status(
            session, run_id=run.id, status=status, error=error, finished_at=utcnow()
        )
    await events.emit(
        rt.broadcaster,
        chat_id=run.chat_id,
        run_id=run.id,
        type="workflow_failed" if interrupted else "workflow_cancelled",
        message=f"Workflow {status}: {error['message']}",
        error=error,
    )


async def mark_interrupted(*, rt: Runtime, run_ids: list[str] | None = None) -> int:
    """Mark unfinished runs interrupted (all of them at start-up, or the given ones)."""
    async with rt.db.read() as session:
        unfinished = await runs_repo.list_unfinished(session)
    count = 0
    for run in unfinished:
        if run_ids is not None and run.id not in run_ids:
            continue
        error = {
            "code": "interrupted",
            "message": "the server stopped before this run finished; run it again",
            "step": None,
        }
        async with rt.db.write() as session:
            await runs_repo.skip_pending_steps(session, run_id=run.id)
            await runs_repo.set_status(
                session, run_id=run.id, status="interrupted", error=error, finished_at=utcnow()
            )
        await events.emit(
            rt.broadcaster,
            chat_id=run.chat_id,
            run_id=run.id,
            type="workflow_failed",
            message="Workflow interrupted: the server stopped before it finished",
            error=error,
        )
        count += 1
    return count
