"""``GET /metrics``: this process's Prometheus metrics (no /api/v1 prefix, as scrapers expect)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials

from chatflow.api.deps import RuntimeDep, bearer, errors, get_owner
from chatflow.metrics import CONTENT_TYPE
from chatflow.runtime import Runtime
from chatflow.services import observability

router = APIRouter(tags=["system"])


def metrics_access(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """A valid API key, as every endpoint asks, unless CHATFLOW_METRICS_PUBLIC opens it."""
    runtime: Runtime = request.state.runtime
    if not runtime.settings.metrics_public:
        get_owner(request, credentials)


@router.get(
    "/metrics",
    response_class=Response,
    dependencies=[Depends(metrics_access)],
    responses={
        200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}}},
        **errors(),
    },
)
async def metrics(rt: RuntimeDep) -> Response:
    """Prometheus text format: runs, steps, queue, WebSockets, events, uploads, pool, Redis."""
    return Response(await observability.scrape(rt=rt), media_type=CONTENT_TYPE)
