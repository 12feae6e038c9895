"""Dependencies shared by the endpoints."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Header, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from chatflow import logs
from chatflow.api.schemas import ErrorResponse
from chatflow.db.models import Chat
from chatflow.errors import Unauthorized
from chatflow.runtime import Runtime
from chatflow.services import chats


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.state.runtime
    return runtime


def get_base_url(request: Request) -> str:
    """Base for absolute links: CHATFLOW_PUBLIC_URL, or what the client used to reach us."""
    runtime: Runtime = request.state.runtime
    return runtime.settings.public_url or str(request.base_url).rstrip("/")


# auto_error=False: we answer 401 ourselves, in the error envelope; declaring the scheme gives
# the docs UI its "Authorize" button.
bearer = HTTPBearer(auto_error=False, description="an API key from CHATFLOW_API_KEYS")


def get_owner(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str | None:
    """The caller's owner id (None when no API keys are configured); 401 without a valid key."""
    runtime: Runtime = request.state.runtime
    if not runtime.keys.enabled:
        return None
    owner = runtime.keys.owner_of(credentials.credentials if credentials else None)
    if owner is None:
        raise Unauthorized(
            "a valid API key is required: send 'Authorization: Bearer <key>'",
            code="unauthorized",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return owner


def has_valid_key(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> bool:
    """Whether the caller presented a valid key (always true when no keys are configured)."""
    runtime: Runtime = request.state.runtime
    if not runtime.keys.enabled:
        return True
    return runtime.keys.owner_of(credentials.credentials if credentials else None) is not None


async def owned_chat(
    chat_id: Annotated[str, Path(description="the chat's id (a UUID)")],
    request: Request,
    owner: Annotated[str | None, Depends(get_owner)],
) -> Chat:
    """The caller's chat named in the path, or 404: resolved before the endpoint runs, so no
    route can act on a chat before its ownership is known."""
    runtime: Runtime = request.state.runtime
    chat = await chats.require(rt=runtime, chat_id=chat_id, owner=owner)
    # The rest of the request (the endpoint runs in this task) logs with the chat's id.
    logs.CHAT_ID.set(chat.id)
    return chat


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="retrying with the same key and body returns the first response (24 h); "
        "a retry while the first is still at work waits for its answer, then 409 "
        "idempotency_in_progress",
    ),
]
Owner = Annotated[str | None, Depends(get_owner)]
# Every route under /chat/workflows/{chat_id} takes this: the chat, canonical id, owner checked.
OwnedChat = Annotated[Chat, Depends(owned_chat)]
BaseUrl = Annotated[str, Depends(get_base_url)]


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error responses an endpoint can give."""
    # Any route can see malformed input (400/422) and a missing key (401); listing 422 here
    # also replaces FastAPI's default 422 schema, which is not our error envelope.
    return {status: {"model": ErrorResponse} for status in sorted({400, 401, 422, *statuses})}
