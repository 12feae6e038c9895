"""Chats table."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from chatflow.db.models import Chat


async def insert(
    session: AsyncSession, *, chat_id: str, title: str | None, owner: str | None
) -> Chat:
    chat = Chat(id=chat_id, title=title, owner=owner, last_seq=0)
    session.add(chat)
    await session.flush()
    return chat


async def lock(session: AsyncSession, *, chat_id: str) -> bool:
    """Hold the chat's row until the transaction ends; False if the chat is gone.

    On PostgreSQL this serialises the transactions that number things per chat (file versions
    here, event seqs in events.take_seqs, whose UPDATE takes the same row lock). On SQLite the
    one writer already does, and FOR UPDATE is not rendered."""
    query = select(Chat.id).where(Chat.id == chat_id).with_for_update()
    return (await session.execute(query)).scalar_one_or_none() is not None


async def get(session: AsyncSession, *, chat_id: str, owner: str | None = None) -> Chat | None:
    query = select(Chat).where(Chat.id == chat_id)
    if owner is not None:
        query = query.where(Chat.owner == owner)
    return (await session.execute(query)).scalar_one_or_none()


async def list_page(
    session: AsyncSession,
    *,
    limit: int,
    before: tuple[datetime, str] | None,
    owner: str | None = None,
) -> list[Chat]:
    """Newest first; ``before`` is the (created_at, id) of the last chat on the previous page."""
    query = select(Chat).order_by(Chat.created_at.desc(), Chat.id.desc()).limit(limit)
    if before is not None:
        query = query.where(tuple_(Chat.created_at, Chat.id) < tuple_(*before))
    if owner is not None:
        query = query.where(Chat.owner == owner)
    return list((await session.execute(query)).scalars())


async def set_title(
    session: AsyncSession, *, chat_id: str, title: str | None, owner: str | None = None
) -> Chat | None:
    """The chat with its new title, or None if it is not there (or not ``owner``'s)."""
    chat = await get(session, chat_id=chat_id, owner=owner)
    if chat is not None:
        chat.title = title
        await session.flush()
    return chat


async def remove(session: AsyncSession, *, chat_id: str) -> bool:
    result = await session.execute(delete(Chat).where(Chat.id == chat_id))
    return bool(result.rowcount)  # type: ignore[attr-defined]
