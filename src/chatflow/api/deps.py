"""Dependencies shared by the endpoints."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from chatflow.api.schemas import ErrorResponse
from chatflow.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.state.runtime
    return runtime


def get_base_url(request: Request) -> str:
    """Base for absolute links: CHATFLOW_PUBLIC_URL, or what the client used to reach us."""
    runtime: Runtime = request.state.runtime
    return runtime.settings.public_url or str(request.base_url).rstrip("/")


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
BaseUrl = Annotated[str, Depends(get_base_url)]


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error responses an endpoint can give."""
    return {status: {"model": ErrorResponse} for status in statuses}
