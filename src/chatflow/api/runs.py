"""Executing workflows, reading and cancelling their runs, saving them by name."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response

from chatflow.api.deps import BaseUrl, IdempotencyKey, OwnedChat, Owner, RuntimeDep, errors
from chatflow.api.schemas import (
    DryRunOut,
    Envelope,
    ExecuteIn,
    RunAccepted,
    RunOut,
    StepIn,
    WorkflowOut,
    WorkflowSave,
)
from chatflow.runs import submit
from chatflow.runs.validation import StepRequest
from chatflow.services import workflows

router = APIRouter(prefix="/chat/workflows/{chat_id}", tags=["runs"])
saved = APIRouter(prefix="/workflows", tags=["saved workflows"])


def _requests(steps: list[StepIn]) -> list[StepRequest]:
    return [StepRequest(step.operation, step.arguments) for step in steps]


@router.post(
    "/execute",
    status_code=202,
    response_model=Envelope[RunAccepted],
    responses={
        200: {
            "model": Envelope[RunOut] | Envelope[DryRunOut],
            "description": "with ?wait=true: the finished run; with ?dry_run=true: the check",
        },
        **errors(404, 409, 422, 503),
    },
)
async def execute(
    chat: OwnedChat,
    body: ExecuteIn,
    rt: RuntimeDep,
    owner: Owner,
    base: BaseUrl,
    idempotency_key: IdempotencyKey = None,
    wait: Annotated[bool, Query(description="answer when the run has finished")] = False,
    wait_s: Annotated[
        float, Query(alias="timeout", gt=0, le=3600, description="seconds to wait")
    ] = 300,
    dry_run: Annotated[
        bool, Query(description="check on a sample of the input; write nothing, run nothing")
    ] = False,
) -> JSONResponse:
    """Validate and queue a workflow; 202 with the run id (200 with the run if ``wait``)."""
    status, data = await submit.execute_workflow(
        rt=rt,
        owner=owner,
        chat_id=chat.id,
        steps=_requests(body.steps) if body.steps is not None else None,
        workflow=body.workflow,
        input_name=body.input,
        wait=wait,
        wait_s=wait_s,
        dry_run=dry_run,
        base=base,
        idempotency_key=idempotency_key,
    )
    model = DryRunOut if dry_run else RunOut if status == 200 else RunAccepted
    shaped = model.model_validate(data).model_dump(mode="json")
    return JSONResponse({"data": shaped}, status_code=status)


@router.get("/runs", response_model=Envelope[list[RunOut]], responses=errors(404))
async def list_runs(
    chat: OwnedChat, rt: RuntimeDep, owner: Owner, base: BaseUrl
) -> dict[str, object]:
    """List the chat's runs, newest first."""
    return {"data": await submit.list_chat_runs(rt=rt, owner=owner, chat_id=chat.id, base=base)}


@router.get("/runs/{run_id}", response_model=Envelope[RunOut], responses=errors(404))
async def get_run(
    chat: OwnedChat, run_id: str, rt: RuntimeDep, owner: Owner, base: BaseUrl
) -> dict[str, object]:
    """Show one run: status, steps, timings, outputs, error."""
    return {
        "data": await submit.show_run(rt=rt, owner=owner, chat_id=chat.id, run_id=run_id, base=base)
    }


@router.post(
    "/runs/{run_id}/cancel",
    status_code=202,
    response_model=Envelope[RunOut],
    responses=errors(404, 409),
)
async def cancel_run(
    chat: OwnedChat, run_id: str, rt: RuntimeDep, owner: Owner, base: BaseUrl
) -> dict[str, object]:
    """Cancel a queued or running run; it ends ``cancelled`` with a workflow_cancelled event."""
    return {
        "data": await submit.stop_run(rt=rt, owner=owner, chat_id=chat.id, run_id=run_id, base=base)
    }


@router.post(
    "/workflows",
    status_code=201,
    response_model=Envelope[WorkflowOut],
    responses=errors(404, 409, 422),
)
async def save_workflow(
    chat: OwnedChat, body: WorkflowSave, rt: RuntimeDep, owner: Owner
) -> dict[str, object]:
    """Save steps, or one of this chat's runs, as a named workflow."""
    saved_row = await workflows.save(
        rt=rt,
        owner=owner,
        chat_id=chat.id,
        name=body.name,
        description=body.description,
        steps=_requests(body.steps) if body.steps is not None else None,
        run_id=body.run_id,
        replace=body.replace,
    )
    return {"data": saved_row}


@saved.get("", response_model=Envelope[list[WorkflowOut]], responses=errors())
async def list_workflows(rt: RuntimeDep, owner: Owner) -> dict[str, object]:
    """List saved workflows by name."""
    return {"data": await workflows.list_all(rt=rt, owner=owner)}


@saved.get("/{name}", response_model=Envelope[WorkflowOut], responses=errors(404))
async def get_workflow(name: str, rt: RuntimeDep, owner: Owner) -> dict[str, object]:
    """Show one saved workflow."""
    return {"data": await workflows.show(rt=rt, owner=owner, name=name)}


@saved.delete("/{name}", status_code=204, responses=errors(404))
async def delete_workflow(name: str, rt: RuntimeDep, owner: Owner) -> Response:
    """Delete a saved workflow."""
    await workflows.delete(rt=rt, owner=owner, name=name)
    return Response(status_code=204)
