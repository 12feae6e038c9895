"""Dependencies shared by the endpoints."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Header, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from chatflow import logs
from chatflow.api.error_codes import CODES, EVERY_ROUTE, JSON_BODY
from chatflow.api.schemas import ErrorResponse
from chatflow.db.models import Chat
from chatflow.errors import Unauthorized
from chatflow.filenames import MAX_NAME_LENGTH, NAME_PATTERN
from chatflow.runtime import Runtime
from chatflow.services import chats
from chatflow.services.idempotency import MAX_KEY_LENGTH
from chatflow.services.workflows import NAME as WORKFLOW_NAME


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
    chat_id: Annotated[
        str,
        # Documented as a UUID; anything else names no chat, hence 404 chat_not_found.
        Path(description="the chat's id (a UUID)", json_schema_extra={"format": "uuid"}),
    ],
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
        # Checked by the idempotency service: 400 invalid_idempotency_key.
        json_schema_extra={"minLength": 1, "maxLength": MAX_KEY_LENGTH},
    ),
]
# Names in paths, documented with the rules the services check (they answer 400 or 404).
RunId = Annotated[
    str, Path(description="the run's id (a UUID)", json_schema_extra={"format": "uuid"})
]
FileName = Annotated[
    str,
    Path(
        description="a file name of the chat (400 invalid_filename for a name no file may have; "
        "the pattern is exact for ASCII, and beyond it invisible characters are refused too)",
        json_schema_extra={"pattern": NAME_PATTERN, "maxLength": MAX_NAME_LENGTH},
    ),
]
WorkflowName = Annotated[
    str,
    Path(
        description="a saved workflow's name", json_schema_extra={"pattern": WORKFLOW_NAME.pattern}
    ),
]
Owner = Annotated[str | None, Depends(get_owner)]
# Every route under /chat/workflows/{chat_id} takes this: the chat, canonical id, owner checked.
OwnedChat = Annotated[Chat, Depends(owned_chat)]
BaseUrl = Annotated[str, Depends(get_base_url)]


Code = str | tuple[str, int]  # a code of error_codes.CODES, or (code, another status)
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}


def errors(*codes: Code, keyed: bool = True, json_body: bool = False) -> dict[int | str, Any]:
    """OpenAPI entries for the error answers of a route: each status with its codes, an example
    of each, in the error envelope. Every route can answer ``EVERY_ROUTE``; ``keyed`` routes 401
    without a valid key (when keys are configured); ``json_body`` routes a broken body."""
    named = [*codes, *EVERY_ROUTE, *(["unauthorized"] if keyed else []), *(JSON_BODY * json_body)]
    by_status: dict[int, dict[str, str]] = {}
    for code in named:
        name, status = code if isinstance(code, tuple) else (code, CODES[code][0])
        by_status.setdefault(status, {})[name] = CODES[name][1]
    return {status: _error_entry(by_status[status]) for status in sorted(by_status)}


def _error_entry(codes: dict[str, str]) -> dict[str, Any]:
    examples = {
        code: {
            "summary": about,
            "value": {"error": {"code": code, "message": about, "details": None}},
        }
        for code, about in codes.items()
    }
    entry: dict[str, Any] = {
        "model": ErrorResponse,
        "description": "; ".join(f"`{code}`: {about}" for code, about in codes.items()),
        "content": {"application/json": {"examples": examples}},
    }
    if {"shutting_down", "database_busy", "idempotency_in_progress"} & codes.keys():
        entry["headers"] = _RETRY_AFTER
    return entry
