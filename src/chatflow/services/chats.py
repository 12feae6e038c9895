"""Chats: create, list, show, rename, delete."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from datetime import datetime
from typing import Any

from chatflow.db.models import Chat
from chatflow.errors import BadRequest, NotFound
from chatflow.repositories import chats as chats_repo
from chatflow.repositories import files as files_repo
from chatflow.repositories import runs as runs_repo
from chatflow.runtime import Runtime
from chatflow.services.views import chat_view, file_view, run_view


def parse_chat_id(raw: str) -> str:
    """The canonical form of a chat id, or NotFound: anything that is not a UUID names no chat."""
    try:
        return str(uuid.UUID(raw))
    except (ValueError, AttributeError):
        raise NotFound(f"chat {raw!r} not found", code="chat_not_found") from None


async def require(*, rt: Runtime, chat_id: str, owner: str | None) -> Chat:
    """The chat, or NotFound; with an ``owner``, another owner's chat does not exist either."""
    chat_id = parse_chat_id(chat_id)
    async with rt.db.read() as session:
        chat = await chats_repo.get(session, chat_id=chat_id, owner=owner)
    if chat is None:
        raise NotFound(f"chat {chat_id} not found", code="chat_not_found")
    return chat


async def create(*, rt: Runtime, title: str | None, owner: str | None, base: str) -> dict[str, Any]:
    async with rt.db.write() as session:
        chat = await chats_repo.insert(session, chat_id=str(uuid.uuid4()), title=title, owner=owner)
    return chat_view(chat, base)


# What a cursor is made of (URL-safe base64); documented in OpenAPI.
CURSOR_PATTERN = "^[A-Za-z0-9_=-]*$"


def _encode_cursor(chat: Chat) -> str:
    raw = json.dumps([chat.created_at.isoformat(), chat.id]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created, chat_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return datetime.fromisoformat(created), str(chat_id)
    except Exception:
        raise BadRequest(
            "cursor is not one this server handed out", code="invalid_cursor"
        ) from None


async def list_page(
    *, rt: Runtime, limit: int, cursor: str | None, owner: str | None, base: str
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of chats, newest first, and the cursor of the next page (None at the end)."""
    before = _decode_cursor(cursor) if cursor else None
    async with rt.db.read() as session:
        rows = await chats_repo.list_page(session, limit=limit + 1, before=before, owner=owner)
    page = rows[:limit]
    next_cursor = _encode_cursor(page[-1]) if len(rows) > limit else None
    return [chat_view(chat, base) for chat in page], next_cursor


async def detail(*, rt: Runtime, chat_id: str, owner: str | None, base: str) -> dict[str, Any]:
    chat = await require(rt=rt, chat_id=chat_id, owner=owner)
    async with rt.db.read() as session:
        files = await files_repo.list_for_chat(session, chat_id=chat.id)
        runs = await runs_repo.list_for_chat(session, chat_id=chat.id)
    outputs_by_run: dict[str, list[Any]] = {}
    for row in files:
        if row.run_id:
            outputs_by_run.setdefault(row.run_id, []).append(row)
    return {
        **chat_view(chat, base),
        "files": [file_view(row, base) for row in files],
        "runs": [run_view(run, outputs_by_run.get(run.id, []), base) for run in runs],
    }


async def rename(
    *, rt: Runtime, chat_id: str, title: str | None, owner: str | None, base: str
) -> dict[str, Any]:
    """Set the chat's title; NotFound if it is gone (or another owner's)."""
    async with rt.db.write() as session:
        chat = await chats_repo.set_title(session, chat_id=chat_id, owner=owner, title=title)
    if chat is None:
        raise NotFound(f"chat {chat_id} not found", code="chat_not_found")
    return chat_view(chat, base)


async def delete(*, rt: Runtime, chat_id: str, owner: str | None) -> None:
    """Remove the chat, its files, runs, events and messages; close its subscribers."""
    chat = await require(rt=rt, chat_id=chat_id, owner=owner)
    await rt.runs.cancel_chat(chat.id, "cancelled")
    async with rt.db.write() as session:
        await chats_repo.remove(session, chat_id=chat.id)
    rt.broadcaster.close_topic(chat.id, "deleted")
    await asyncio.to_thread(rt.store.remove_chat, chat.id)
