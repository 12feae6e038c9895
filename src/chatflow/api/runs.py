"""Executing workflows, reading and cancelling their runs, saving them by name."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response

from chatflow.api.deps import (
    BaseUrl,
    IdempotencyKey,
    OwnedChat,
    Owner,
    RunId,
    RuntimeDep,
    WorkflowName,
    errors,
)
from chatflow.api.error_codes import AT_422, STEPS
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

# With ?dry_run=true, a step that fails on the sample answers 422 with its run error's code
# (README, "Error codes"): that set is open, so it is described, not listed.
_EXECUTE_ERRORS = (
    *("chat_not_found", "invalid_idempotency_key", "dry_run_stopped", "idempotency_in_progress"),
    *(*STEPS, "input_not_found", "column_not_found", AT_422, "idempotency_key_reused"),
    "shutting_down",
)


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
        **errors(*_EXECUTE_ERRORS, json_body=True),
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
        bool,
        Query(
            description="check on a sample of the input; write nothing, run nothing (a step "
            "that fails on the sample answers 422 with its run error's code)"
        ),
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


@router.get("/runs", response_model=Envelope[list[RunOut]], responses=errors("chat_not_found"))
async def list_runs(
    chat: OwnedChat, rt: RuntimeDep, owner: Owner, base: BaseUrl
) -> dict[str, object]:
    """List the chat's runs, newest first."""
    return {"data": await submit.list_chat_runs(rt=rt, owner=owner, chat_id=chat.id, base=base)}


@router.get(
    "/runs/{run_id}",
    response_model=Envelope[RunOut],
    responses=errors("chat_not_found", "run_not_found"),
)
async def get_run(
    chat: OwnedChat, run_id: RunId, rt: RuntimeDep, owner: Owner, base: BaseUrl
) -> dict[str, object]:
    """Show one run: status, steps, timings, outputs, error."""
    return {
        "data": await submit.show_run(rt=rt, owner=owner, chat_id=chat.id, run_id=run_id, base=base)
    }


@router.post(
    "/runs/{run_id}/cancel",
    status_code=202,
    response_model=Envelope[RunOut],
    responses=errors("chat_not_found", "run_not_found", "run_finished", "disk_full"),
)
async def cancel_run(
    chat: OwnedChat, run_id: RunId, rt: RuntimeDep, owner: Owner, base: BaseUrl
) -> dict[str, object]:
    """Cancel a queued or running run; it ends ``cancelled`` with a workflow_cancelled event."""
    return {
        "data": await submit.stop_run(rt=rt, owner=owner, chat_id=chat.id, run_id=run_id, base=base)
    }


@router.post(
    "/workflows",
    status_code=201,
    response_model=Envelope[WorkflowOut],
    responses=errors(
        "chat_not_found",
        "run_not_found",
        "workflow_exists",
        "invalid_workflow_name",
        *STEPS,
        json_body=True,
    ),
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


@saved.get("/{name}", response_model=Envelope[WorkflowOut], responses=errors("workflow_not_found"))
async def get_workflow(name: WorkflowName, rt: RuntimeDep, owner: Owner) -> dict[str, object]:
    """Show one saved workflow."""
    return {"data": await workflows.show(rt=rt, owner=owner, name=name)}


@saved.delete("/{name}", status_code=204, responses=errors("workflow_not_found", "disk_full"))
async def delete_workflow(name: WorkflowName, rt: RuntimeDep, owner: Owner) -> Response:
    """Delete a saved workflow."""
    await workflows.delete(rt=rt, owner=owner, name=name)
    return Response(status_code=204)
