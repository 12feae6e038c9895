"""Executing workflows and reading their runs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from chatflow.api.deps import BaseUrl, RuntimeDep, errors
from chatflow.api.schemas import Envelope, ExecuteIn, RunAccepted, RunOut
from chatflow.services import links, runs
from chatflow.services.runs import StepRequest

router = APIRouter(prefix="/chat/workflows/{chat_id}", tags=["runs"])


@router.post(
    "/execute",
    status_code=202,
    response_model=Envelope[RunAccepted],
    responses={
        200: {"model": Envelope[RunOut], "description": "with ?wait=true"},
        **errors(404, 422, 503),
    },
)
async def execute(
    chat_id: str,
    body: ExecuteIn,
    rt: RuntimeDep,
    base: BaseUrl,
    wait: Annotated[bool, Query(description="answer when the run has finished")] = False,
    wait_s: Annotated[
        float, Query(alias="timeout", gt=0, le=3600, description="seconds to wait")
    ] = 300,
) -> object:
    """Validate and queue a workflow; 202 with the run id (200 with the run if ``wait``)."""
    run_id, handle = await runs.submit(
        rt=rt,
        chat_id=chat_id,
        steps=[StepRequest(s.operation, s.arguments) for s in body.steps],
        input_name=body.input,
        base=base,
    )
    if wait and await runs.wait(handle=handle, timeout_s=wait_s):
        run = await runs.show(rt=rt, chat_id=chat_id, run_id=run_id, base=base)
        return JSONResponse({"data": RunOut.model_validate(run).model_dump(mode="json")})
    status = "queued" if not handle.started else "running"
    return {
        "data": {
            "run_id": run_id,
            "status": status,
            "status_url": links.run_url(base, handle.chat_id, run_id),
        }
    }


@router.get("/runs", response_model=Envelope[list[RunOut]], responses=errors(404))
async def list_runs(chat_id: str, rt: RuntimeDep, base: BaseUrl) -> dict[str, object]:
    """List the chat's runs, newest first."""
    return {"data": await runs.list_runs(rt=rt, chat_id=chat_id, base=base)}


@router.get("/runs/{run_id}", response_model=Envelope[RunOut], responses=errors(404))
async def get_run(chat_id: str, run_id: str, rt: RuntimeDep, base: BaseUrl) -> dict[str, object]:
    """Show one run: status, steps, timings, outputs, error."""
    return {"data": await runs.show(rt=rt, chat_id=chat_id, run_id=run_id, base=base)}
