"""Health and the operation catalogue."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends

from chatflow import __version__
from chatflow.api.deps import BaseUrl, RuntimeDep, errors, get_owner, has_valid_key
from chatflow.api.schemas import Envelope, HealthOut, LivenessOut, OperationOut, ProbeOut
from chatflow.services import links, observability

router = APIRouter(tags=["system"])


# The empty security requirement: health answers without a key (api/openapi.py).
@router.get(
    "/health",
    response_model=Envelope[HealthOut | LivenessOut],
    responses=errors(keyed=False),
    openapi_extra={"security": [{}]},
)
async def health(
    rt: RuntimeDep, base: BaseUrl, keyed: Annotated[bool, Depends(has_valid_key)]
) -> dict[str, object]:
    """Liveness; with a valid key (or when no keys are configured) also version and counters."""
    database_ok = await rt.db.ping()
    if not keyed:
        # Load balancers probe without a key: they learn that it lives, nothing about its use.
        return {"data": {"status": "ok" if database_ok else "degraded"}}
    # The seed's port (CHATFLOW_WS_PORT) serves the same sockets; 0 turns it off.
    ws_port = rt.settings.ws_port
    seed_url = links.websocket_url(base, "{chat_id}", ws_port) if ws_port else None
    return {
        "data": {
            "status": "ok" if database_ok else "degraded",
            "version": __version__,
            "database": "ok" if database_ok else "unreachable",
            "websocket": "running",
            "websocket_url": links.websocket_url(base, "{chat_id}"),
            "websocket_seed_url": seed_url,
            "active_runs": rt.runs.active,
            "subscribers": rt.broadcaster.subscriber_count(),
            "uptime_s": round(time.monotonic() - rt.started_at, 3),
        }
    }


@router.get("/health/live", response_model=Envelope[ProbeOut])
async def health_live() -> dict[str, object]:
    """200 while the process answers; asks nothing of the database (no key needed)."""
    return {"data": {"status": "ok"}}


@router.get(
    "/health/ready", response_model=Envelope[ProbeOut], responses=errors("not_ready", keyed=False)
)
async def health_ready(rt: RuntimeDep) -> dict[str, object]:
    """200 when the database and Redis (if configured) answer and migrations are at head;
    otherwise 503 not_ready with Retry-After (no key needed)."""
    await observability.require_ready(rt=rt)
    return {"data": {"status": "ok"}}


@router.get(
    "/operations",
    response_model=Envelope[list[OperationOut]],
    dependencies=[Depends(get_owner)],
    responses=errors(),
)
async def operations(rt: RuntimeDep) -> dict[str, object]:
    """Every registered operation with its arguments' JSON Schema and an example."""
    return {
        "data": [
            {
                "name": op.name,
                "description": op.description,
                "arguments_schema": op.json_schema(),
                "example": op.example,
            }
            for op in rt.registry.all()
        ]
    }
