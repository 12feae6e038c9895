"""Messages table: the chat transcript."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from chatflow.db.models import Message


async def insert(
    session: AsyncSession, *, chat_id: str, role: str, text: str, data: dict[str, Any] | None
) -> Message:
    message = Message(chat_id=chat_id, role=role, text=text, data=data)
    session.add(message)
    await session.flush()
    return message


async def list_page(
    session: AsyncSession, *, chat_id: str, after_id: int, limit: int
) -> list[Message]:
    query = (
        select(Message)
        .where(Message.chat_id == chat_id, Message.id > after_id)
        .order_by(Message.id)
        .limit(limit)
    )
    return list((await session.execute(query)).scalars())
