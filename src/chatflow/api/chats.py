"""Chats, their transcript and their stored events."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Response

from chatflow.api.deps import BaseUrl, OwnedChat, Owner, RuntimeDep, errors
from chatflow.api.schemas import (
    ChatCreate,
    ChatDetail,
    ChatOut,
    ChatPage,
    ChatRename,
    Envelope,
    EventOut,
    MessageIn,
    MessageOut,
)
from chatflow.services import chats, events, messages
from chatflow.services.chats import CURSOR_PATTERN

router = APIRouter(prefix="/chat/workflows", tags=["chats"])


@router.post(
    "", status_code=201, response_model=Envelope[ChatOut], responses=errors(json_body=True)
)
async def create_chat(
    rt: RuntimeDep, owner: Owner, base: BaseUrl, body: Annotated[ChatCreate | None, Body()] = None
) -> dict[str, object]:
    """Open a new chat."""
    return {
        "data": await chats.create(
            rt=rt, owner=owner, title=body.title if body else None, base=base
        )
    }


@router.get("", response_model=Envelope[ChatPage], responses=errors("invalid_cursor"))
async def list_chats(
    rt: RuntimeDep,
    owner: Owner,
    base: BaseUrl,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[
        str | None,
        Query(
            description="next_cursor of the previous page (400 invalid_cursor for any other)",
            json_schema_extra={"pattern": CURSOR_PATTERN},
        ),
    ] = None,
) -> dict[str, object]:
    """List chats, newest first."""
    items, next_cursor = await chats.list_page(
        rt=rt, owner=owner, limit=limit, cursor=cursor, base=base
    )
    return {"data": {"items": items, "next_cursor": next_cursor}}


@router.get("/{chat_id}", response_model=Envelope[ChatDetail], responses=errors("chat_not_found"))
async def get_chat(
    chat: OwnedChat, rt: RuntimeDep, owner: Owner, base: BaseUrl
) -> dict[str, object]:
    """Show one chat with its files and runs."""
    return {"data": await chats.detail(rt=rt, owner=owner, chat_id=chat.id, base=base)}


@router.patch(
    "/{chat_id}",
    response_model=Envelope[ChatOut],
    responses=errors("chat_not_found", json_body=True),
)
async def rename_chat(
    chat: OwnedChat, body: ChatRename, rt: RuntimeDep, owner: Owner, base: BaseUrl
) -> dict[str, object]:
    """Give a chat a new title."""
    return {
        "data": await chats.rename(rt=rt, owner=owner, chat_id=chat.id, title=body.title, base=base)
    }


@router.delete("/{chat_id}", status_code=204, responses=errors("chat_not_found", "disk_full"))
async def delete_chat(chat: OwnedChat, rt: RuntimeDep, owner: Owner) -> Response:
    """Delete a chat with its files, runs, events and messages."""
    # Its runs are cancelled inside chats.delete, after the ownership check.
    await chats.delete(rt=rt, owner=owner, chat_id=chat.id)
    return Response(status_code=204)


@router.get(
    "/{chat_id}/events", response_model=Envelope[list[EventOut]], responses=errors("chat_not_found")
)
async def list_events(
    chat: OwnedChat,
    rt: RuntimeDep,
    since: Annotated[int, Query(ge=0, le=2**62, description="return events with seq > since")] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> dict[str, object]:
    """The chat's stored events after sequence number ``since``."""
    return {"data": await events.list_since(rt.db, chat_id=chat.id, since=since, limit=limit)}


@router.get(
    "/{chat_id}/messages",
    response_model=Envelope[list[MessageOut]],
    responses=errors("chat_not_found"),
)
async def list_messages(
    chat: OwnedChat,
    rt: RuntimeDep,
    after: Annotated[int, Query(ge=0, le=2**62, description="return messages with id > after")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, object]:
    """The chat's transcript, oldest first."""
    return {"data": await messages.list_page(rt=rt, chat_id=chat.id, after_id=after, limit=limit)}


@router.post(
    "/{chat_id}/messages",
    status_code=201,
    response_model=Envelope[MessageOut],
    responses=errors("chat_not_found", json_body=True),
)
async def post_message(chat: OwnedChat, body: MessageIn, rt: RuntimeDep) -> dict[str, object]:
    """Add a user message to the transcript."""
    return {"data": await messages.add(rt=rt, chat_id=chat.id, role="user", text=body.text)}
