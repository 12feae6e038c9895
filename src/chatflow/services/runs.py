"""Workflow runs: validate a request whole, record it, queue it, show it."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from chatflow.db.models import Run, RunStep, StoredFile
from chatflow.errors import Conflict, Invalid, NotFound, Unavailable
from chatflow.operations.common import require_columns
from chatflow.operations.registry import Operation, StepFailed
from chatflow.repositories import files as files_repo
from chatflow.repositories import runs as runs_repo
from chatflow.runtime import Runtime
from chatflow.services import chats, events
from chatflow.services.views import run_view


@dataclass
class StepRequest:
    operation: str
    arguments: dict[str, Any]


def validate_steps(rt: Runtime, steps: list[StepRequest]) -> list[tuple[Operation[Any], Any]]:
    """Each step's operation and validated arguments; 422 for the first problem."""
    if not steps:
        raise Invalid("a workflow needs at least one step", code="empty_workflow")
    # Checked before any step is looked at: execute, dry runs and saved workflows all pass here.
    limit = rt.settings.max_steps
    if len(steps) > limit:
        raise Invalid(
            f"a workflow may have at most {limit} steps (CHATFLOW_MAX_STEPS); this one has "
            f"{len(steps)}",
            code="too_many_steps",
            details={"limit": limit, "steps": len(steps)},
        )
    validated = []
    for index, step in enumerate(steps):
        operation = rt.registry.get(step.operation)
        if operation is None:
            raise Invalid(
                f"steps[{index}]: unknown operation {step.operation!r}",
                code="unknown_operation",
                details={
                    "step_index": index,
                    "operation": step.operation,
                    "available": rt.registry.names(),
                },
            )
        try:
            args = operation.args_model.model_validate(
                step.arguments, context=rt.settings.limits.as_context()
            )
        except ValidationError as exc:
            problems = [
                {"loc": list(err["loc"]), "msg": err["msg"], "type": err["type"]}
                for err in exc.errors(include_url=False, include_context=False)
            ]
            first = problems[0]
            where = ".".join(str(part) for part in first["loc"]) or "arguments"
            raise Invalid(
                f"steps[{index}] ({step.operation}): {where}: {first['msg']}",
                code="invalid_arguments",
                details={"step_index": index, "operation": step.operation, "errors": problems},
            ) from None
        validated.append((operation, args))
    return validated


def _check_input_columns(
    validated: list[tuple[Operation[Any], Any]], input_file: StoredFile
) -> None:
    """Refuse now what the first step would fail on: columns its input does not have."""
    operation, args = validated[0]
    if operation.input_columns is None or not input_file.columns:
        return
    if getattr(args, "sheet", None) not in (None, (input_file.sheets or [None])[0]):
        return  # another sheet: its columns are only known when the step reads it
    try:
        require_columns([str(c) for c in input_file.columns], operation.input_columns(args))
    except StepFailed as exc:
        raise Invalid(
            f"steps[0] ({operation.name}): {exc.message} (in {input_file.name!r})",
            code=exc.code,
            details={"step_index": 0, **exc.details},
        ) from None


@dataclass
class Prepared:
    """A request validated against the chat: its steps and the input file version."""

    chat_id: str
    validated: list[tuple[Operation[Any], Any]]
    input_file: StoredFile


async def prepare(
    *,
    rt: Runtime,
    chat_id: str,
    owner: str | None,
    steps: list[StepRequest],
    input_name: str | None,
) -> Prepared:
    """Validate the whole request: steps, arguments, input file, first step's columns."""
    chat = await chats.require(rt=rt, chat_id=chat_id, owner=owner)
    validated = validate_steps(rt, steps)
    async with rt.db.read() as session:
        if input_name is not None:
            input_file = await files_repo.get(session, chat_id=chat.id, name=input_name)
        else:
            input_file = await files_repo.latest_upload(session, chat_id=chat.id)
    if input_file is None:
        if input_name is not None:
            raise Invalid(
                f"input file {input_name!r} not found in this chat",
                code="input_not_found",
                details={"input": input_name},
            )
        raise Invalid(
            "this chat has no uploaded file to run on; upload one or name an 'input'",
            code="input_not_found",
        )
    _check_input_columns(validated, input_file)
    return Prepared(chat.id, validated, input_file)


async def submit(
    *,
    rt: Runtime,
    chat_id: str,
    owner: str | None,
    steps: list[StepRequest],
    input_name: str | None,
    base: str,
) -> tuple[str, Any]:
    """Validate, record and queue a run; returns its id and queue handle."""
    prepared = await prepare(
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
    return run_id, rt.runs.submit(prepared.chat_id, run_id, base_url=base)


async def cancel(
    *, rt: Runtime, chat_id: str, owner: str | None, run_id: str, base: str
) -> dict[str, Any]:
    """Stop a queued run now, or ask a running one to stop at its next checkpoint."""
    view = await show(rt=rt, chat_id=chat_id, owner=owner, run_id=run_id, base=base)
    if view["status"] not in runs_repo.UNFINISHED:
        raise Conflict(
            f"run {run_id} already ended ({view['status']})",
            code="run_finished",
            details={"status": view["status"]},
        )
    async with rt.db.write() as session:
        was_queued = await runs_repo.cancel_if_queued(session, run_id=run_id)
    if was_queued:
        await events.emit(
            rt.broadcaster,
            chat_id=view["chat_id"],
            run_id=run_id,
            type="workflow_cancelled",
            message="Workflow cancelled before it started",
            error={"code": "cancelled", "message": "the run was cancelled", "step": None},
        )
    handle = rt.runs.get(run_id)
    if handle is not None:
        handle.request_cancel("cancelled")
    return await show(rt=rt, chat_id=chat_id, owner=owner, run_id=run_id, base=base)


async def show(
    *, rt: Runtime, chat_id: str, owner: str | None, run_id: str, base: str
) -> dict[str, Any]:
    chat = await chats.require(rt=rt, chat_id=chat_id, owner=owner)
    async with rt.db.read() as session:
        run = await runs_repo.get(session, chat_id=chat.id, run_id=run_id)
        if run is None:
            raise NotFound(f"run {run_id!r} not found in this chat", code="run_not_found")
        outputs = await files_repo.list_for_runs(session, run_ids=[run.id])
    return run_view(run, outputs, base)


async def list_runs(
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


async def wait(*, handle: Any, timeout_s: float) -> bool:
    """Wait for a submitted run to finish; False on timeout."""
    try:
        await asyncio.wait_for(handle.done.wait(), timeout_s)
    except TimeoutError:
        return False
    return True
