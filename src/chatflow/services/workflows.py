"""Saved workflows: a run's (or a request's) steps under a name, to re-run on other files."""

from __future__ import annotations

import re
from typing import Any

from chatflow.db.models import SavedWorkflow, utcnow
from chatflow.errors import Conflict, Invalid, NotFound
from chatflow.repositories import runs as runs_repo
from chatflow.repositories import workflows as workflows_repo
from chatflow.runs.validation import StepRequest, validate_steps
from chatflow.runtime import Runtime
from chatflow.services import chats
from chatflow.services.views import workflow_view

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,99}$")


async def save(
    *,
    rt: Runtime,
    chat_id: str,
    owner: str | None,
    name: str,
    description: str | None,
    steps: list[StepRequest] | None,
    run_id: str | None,
    replace: bool,
) -> dict[str, Any]:
    """Save ``steps``, or the steps of the chat's run ``run_id``, as workflow ``name``."""
    chat = await chats.require(rt=rt, chat_id=chat_id, owner=owner)
    if not NAME.match(name):
        raise Invalid(
            "workflow names are 1-100 letters, digits, spaces, '.', '_' or '-'",
            code="invalid_workflow_name",
        )
    if (steps is None) == (run_id is None):
        raise Invalid("give either 'steps' or 'run_id'", code="validation_error")
    if run_id is not None:
        async with rt.db.read() as session:
            run = await runs_repo.get(session, chat_id=chat.id, run_id=run_id)
        if run is None:
            raise NotFound(f"run {run_id!r} not found in this chat", code="run_not_found")
        steps = [StepRequest(s["operation"], s["arguments"]) for s in run.steps]
    assert steps is not None
    validated = validate_steps(rt, steps)
    dumped = [
        {"operation": op.name, "arguments": args.model_dump(mode="json")} for op, args in validated
    ]
    async with rt.db.write() as session:
        existing = await workflows_repo.get(session, owner=owner, name=name)
        if existing is not None and not replace:
            raise Conflict(
                f"a workflow named {name!r} exists; pass replace=true to overwrite it",
                code="workflow_exists",
            )
        if existing is not None:
            existing.steps, existing.description = dumped, description
            existing.source_chat_id, existing.source_run_id = chat.id, run_id
            existing.updated_at = utcnow()
            await session.flush()
            return workflow_view(existing)
        row = SavedWorkflow(
            name=name,
            owner=owner,
            description=description,
            steps=dumped,
            source_chat_id=chat.id,
            source_run_id=run_id,
        )
        return workflow_view(await workflows_repo.insert(session, row=row))


async def steps_of(*, rt: Runtime, owner: str | None, name: str) -> list[StepRequest]:
    """The saved steps of workflow ``name`` (422 if there is none: it is part of a request)."""
    async with rt.db.read() as session:
        row = await workflows_repo.get(session, owner=owner, name=name)
    if row is None:
        raise Invalid(f"no saved workflow named {name!r}", code="workflow_not_found")
    return [StepRequest(s["operation"], s["arguments"]) for s in row.steps]


async def list_all(*, rt: Runtime, owner: str | None) -> list[dict[str, Any]]:
    async with rt.db.read() as session:
        return [workflow_view(row) for row in await workflows_repo.list_all(session, owner=owner)]


async def show(*, rt: Runtime, owner: str | None, name: str) -> dict[str, Any]:
    async with rt.db.read() as session:
        row = await workflows_repo.get(session, owner=owner, name=name)
    if row is None:
        raise NotFound(f"no saved workflow named {name!r}", code="workflow_not_found")
    return workflow_view(row)


async def delete(*, rt: Runtime, owner: str | None, name: str) -> None:
    async with rt.db.write() as session:
        if not await workflows_repo.remove(session, owner=owner, name=name):
            raise NotFound(f"no saved workflow named {name!r}", code="workflow_not_found")
