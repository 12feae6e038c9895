"""The execute request and a run's record: validate whole, record, queue; show, list, cancel."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic_core import to_jsonable_python

from chatflow.db.models import Run, RunStep, StoredFile
from chatflow.errors import Conflict, NotFound, Unavailable
from chatflow.repositories import files as files_repo
from chatflow.repositories import runs as runs_repo
from chatflow.runs import outcomes
from chatflow.runs.dry_run import simulate_workflow
from chatflow.runs.validation import StepRequest, prepare_run
from chatflow.runs.waiting import wait_for_end
from chatflow.runtime import Runtime
from chatflow.services import chats, idempotency, links, workflows
from chatflow.services.views import run_view

# A sealed run only records its outputs and ends; this bounds the wait for it all the same.
SEALED_WAIT_S = 30.0


async def execute_workflow(
    *,
    rt: Runtime,
    owner: str | None,
    chat_id: str,
    steps: list[StepRequest] | None,
    workflow: str | None,
    input_name: str | None,
    wait: bool,
    wait_s: float,
    dry_run: bool,
    base: str,
    idempotency_key: str | None,
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, data): 200 dry-run report, 200 finished run (``wait``), or 202 accepted."""
    digest = idempotency.fingerprint(
        [(s.operation, s.arguments) for s in steps or []], workflow, input_name, wait, dry_run
    )
    async with idempotency.keyed(
        rt=rt,
        owner=owner,
        key=idempotency_key,
        scope=f"execute:{chat_id}",
        digest=digest,
        wait_s=wait_s if wait else None,  # a duplicate waits as long as the first may take
    ) as attempt:
        if attempt.replay is not None:
            return attempt.replay[0], dict(attempt.replay[1])
        if steps is None:
            steps = await workflows.steps_of(rt=rt, owner=owner, name=workflow or "")
        if dry_run:
            checked = await simulate_workflow(
                rt=rt, owner=owner, chat_id=chat_id, steps=steps, input_name=input_name
            )
            return 200, checked
        run = await submit_run(
            rt=rt, owner=owner, chat_id=chat_id, steps=steps, input_name=input_name, base=base
        )
        if wait and await wait_for_end(
            db=rt.db,
            broadcaster=rt.broadcaster,
            chat_id=run.chat_id,
            run_id=run.id,
            timeout_s=wait_s,
        ):
            answer = (
                200,
                await show_run(rt=rt, owner=owner, chat_id=chat_id, run_id=run.id, base=base),
            )
        else:
            answer = (202, await _accepted(rt, run, base))
        attempt.remember(answer[0], to_jsonable_python(answer[1]))
        return answer


async def _accepted(rt: Runtime, run: Run, base: str) -> dict[str, Any]:
    """The 202 answer: where the run is now, and where to look next."""
    async with rt.db.read() as session:
        status = await runs_repo.get_status(session, run_id=run.id)
    return {
        "run_id": run.id,
        "status": status,
        "status_url": links.run_url(base, run.chat_id, run.id),
    }


async def submit_run(
    *,
    rt: Runtime,
    chat_id: str,
    owner: str | None,
    steps: list[StepRequest],
    input_name: str | None,
    base: str,
) -> Run:
    """Validate, record and queue a run; the recorded run."""
    prepared = await prepare_run(
        rt=rt, chat_id=chat_id, owner=owner, steps=steps, input_name=input_name
    )
    if not rt.runs.accepting:
        raise Unavailable(
            "the server is shutting down; retry shortly",
            code="shutting_down",
            headers={"Retry-After": "5"},
        )
    run_id = str(uuid.uuid4())
    dumped = [(op.name, args.model_dump(mode="json")) for op, args in prepared.validated]
    run = Run(
        id=run_id,
        chat_id=prepared.chat_id,
        status="queued",
        steps=[{"operation": name, "arguments": arguments} for name, arguments in dumped],
        input_file_id=prepared.input_file.id,
        input_name=prepared.input_file.name,
        input_version=prepared.input_file.version,
    )
    run.step_rows = [
        RunStep(index=index, operation=name, arguments=arguments, status="pending")
        for index, (name, arguments) in enumerate(dumped)
    ]
    async with rt.db.write() as session:
        await runs_repo.insert(session, run=run)
        await rt.runs.defer(session, run, base_url=base)  # the job, if any, commits with the run
    rt.runs.release(run, base_url=base)
    return run


async def stop_run(
    *, rt: Runtime, chat_id: str, owner: str | None, run_id: str, base: str
) -> dict[str, Any]:
    """Cancel a queued run now, or ask a running one to stop at its next checkpoint.

    Both are conditional updates in the database, so they hold whichever process executes the
    run; the cancel is then carried to that process (``signal_cancel``)."""
    view = await show_run(rt=rt, chat_id=chat_id, owner=owner, run_id=run_id, base=base)
    if view["status"] not in runs_repo.UNFINISHED:
        raise _finished(run_id, view["status"])
    states = rt.executor.states
    chat_id = view["chat_id"]
    queued_cancelled = await states.end(
        chat_id=chat_id, run_id=run_id, ending=outcomes.cancelled_before_start(), expect=("queued",)
    )
    if queued_cancelled or await states.request_cancel(run_id, "cancelled"):
        await rt.runs.signal_cancel(chat_id=chat_id, run_id=run_id, reason="cancelled")
        return await show_run(rt=rt, chat_id=chat_id, owner=owner, run_id=run_id, base=base)
    # Ended meanwhile, or sealed: past its last check it only records its outputs and ends.
    await wait_for_end(
        db=rt.db,
        broadcaster=rt.broadcaster,
        chat_id=chat_id,
        run_id=run_id,
        timeout_s=SEALED_WAIT_S,
    )
    view = await show_run(rt=rt, chat_id=chat_id, owner=owner, run_id=run_id, base=base)
    raise _finished(run_id, view["status"])


def _finished(run_id: str, status: str) -> Conflict:
    return Conflict(
        f"run {run_id} already ended ({status})", code="run_finished", details={"status": status}
    )


async def show_run(
    *, rt: Runtime, chat_id: str, owner: str | None, run_id: str, base: str
) -> dict[str, Any]:
    chat = await chats.require(rt=rt, chat_id=chat_id, owner=owner)
    async with rt.db.read() as session:
        run = await runs_repo.get(session, chat_id=chat.id, run_id=run_id)
        if run is None:
            raise NotFound(f"run {run_id!r} not found in this chat", code="run_not_found")
        outputs = await files_repo.list_for_runs(session, run_ids=[run.id])
    return run_view(run, outputs, base)


async def list_chat_runs(
    *, rt: Runtime, chat_id: str, owner: str | None, base: str
) -> list[dict[str, Any]]:
    chat = await chats.require(rt=rt, chat_id=chat_id, owner=owner)
    async with rt.db.read() as session:
        runs = await runs_repo.list_for_chat(session, chat_id=chat.id)
        outputs = await files_repo.list_for_runs(session, run_ids=[run.id for run in runs])
    by_run: dict[str, list[StoredFile]] = {}
    for row in outputs:
        by_run.setdefault(row.run_id or "", []).append(row)
    return [run_view(run, by_run.get(run.id, []), base) for run in runs]
