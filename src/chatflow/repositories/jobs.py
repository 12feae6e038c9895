"""procrastinate's job rows, written through our own connection (PostgreSQL only).

Deferring through procrastinate's SQL function instead of its client puts the job in the
transaction that records the run: both commit, or neither (docs/adr/0003-run-queue.md).
"""

from __future__ import annotations

import json

from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncSession

from chatflow.db.models import Run

_DEFER = text(
    "SELECT (procrastinate_defer_jobs_v1(ARRAY[ROW("
    ":queue, :task, 0, :lock, NULL, CAST(:args AS jsonb), NULL"
    ")::procrastinate_job_to_defer_v1]))[1]"
)
# abort=true: a job still waiting is cancelled, a running one is marked and its worker told
# (procrastinate's trigger NOTIFYs it); a finished job is left as it is.
_ABORT_JOBS_OF = (
    "SELECT procrastinate_cancel_job_v1(queue_job_id, true, false) FROM runs "
    "WHERE queue_job_id IS NOT NULL AND "
)
_ABORT_RUN = text(_ABORT_JOBS_OF + "id = :run_id")
_ABORT_CHAT = text(_ABORT_JOBS_OF + "chat_id = :chat_id AND status IN ('queued', 'running')")


async def defer_run(
    session: AsyncSession, *, queue: str, task: str, run: Run, base_url: str
) -> int:
    """Enqueue the job that executes ``run``, in the session's transaction; its job id.

    The lock (one per chat) makes procrastinate start a chat's jobs one at a time, oldest
    first, on whichever worker; different chats run in parallel."""
    args = {"run_id": run.id, "chat_id": run.chat_id, "base_url": base_url}
    job_id = (
        await session.execute(
            _DEFER,
            {"queue": queue, "task": task, "lock": f"chat:{run.chat_id}", "args": json.dumps(args)},
        )
    ).scalar_one()
    await session.execute(update(Run).where(Run.id == run.id).values(queue_job_id=job_id))
    return int(job_id)


async def abort_run_job(session: AsyncSession, *, run_id: str) -> None:
    await session.execute(_ABORT_RUN, {"run_id": run_id})


async def abort_chat_jobs(session: AsyncSession, *, chat_id: str) -> None:
    await session.execute(_ABORT_CHAT, {"chat_id": chat_id})
