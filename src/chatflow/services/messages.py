"""The chat transcript: user messages and the system entries the service appends."""

from __future__ import annotations

from typing import Any

from chatflow.db.models import Message
from chatflow.repositories import messages as messages_repo
from chatflow.runtime import Runtime
from chatflow.services import events


def message_dict(message: Message) -> dict[str, Any]:
    return {
        "id": message.id,
        "role": message.role,
        "text": message.text,
        "data": message.data,
        "created_at": message.created_at,
    }


async def add(
    *, rt: Runtime, chat_id: str, role: str, text: str, data: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Append to the transcript and announce it with a ``message_added`` event."""
    async with rt.db.write() as session:
        message = await messages_repo.insert(
            session, chat_id=chat_id, role=role, text=text, data=data
        )
    out = message_dict(message)
    await events.emit(
        rt.broadcaster,
        chat_id=chat_id,
        type="message_added",
        message=text,
        entry={**out, "created_at": message.created_at.isoformat()},
    )
    return out


async def list_page(
    *, rt: Runtime, chat_id: str, after_id: int, limit: int
) -> list[dict[str, Any]]:
    async with rt.db.read() as session:
        rows = await messages_repo.list_page(
            session, chat_id=chat_id, after_id=after_id, limit=limit
        )
    return [message_dict(row) for row in rows]
