"""Messages table: the chat transcript."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from chatflow.db.models import Message


def insert_sync(
    conn: Connection, *, chat_id: str, role: str, text: str, data: dict[str, Any] | None
) -> tuple[int, datetime]:
    """Insert one message inside the caller's transaction; its id and created_at."""
    row = conn.execute(
        insert(Message)
        .values(chat_id=chat_id, role=role, text=text, data=data)
        .returning(Message.id, Message.created_at)
    ).one()
    return row.id, row.created_at


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
