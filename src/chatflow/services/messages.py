"""The chat transcript: user messages and the system entries the service appends."""

from __future__ import annotations

from functools import partial
from typing import Any

from sqlalchemy import Connection

from chatflow.broadcaster import Broadcaster
from chatflow.repositories import messages as messages_repo
from chatflow.runtime import Runtime
from chatflow.services import events
from chatflow.services.views import message_dict


async def add(
    *, rt: Runtime, chat_id: str, role: str, text: str, data: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Append to the transcript and announce it with a ``message_added`` event."""
    return await post(broadcaster=rt.broadcaster, chat_id=chat_id, role=role, text=text, data=data)


async def post(
    *,
    broadcaster: Broadcaster,
    chat_id: str,
    role: str,
    text: str,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``add`` for code that has the broadcaster but no runtime (a run's executor).

    The message row and its event are one transaction: neither exists without the other."""
    stored = await events.emit(
        broadcaster,
        chat_id=chat_id,
        type="message_added",
        message=text,
        with_row=partial(record, chat_id=chat_id, role=role, text=text, data=data),
    )
    assert stored is not None  # ``record`` never declines
    return dict(stored["entry"])


def record(
    conn: Connection, *, chat_id: str, role: str, text: str, data: dict[str, Any] | None
) -> dict[str, Any]:
    """Insert a message in the caller's transaction; the ``entry`` of its message_added event."""
    message_id, created_at = messages_repo.insert_sync(
        conn, chat_id=chat_id, role=role, text=text, data=data
    )
    entry = {"id": message_id, "role": role, "text": text, "data": data}
    return {"entry": {**entry, "created_at": created_at.isoformat()}}


async def list_page(
    *, rt: Runtime, chat_id: str, after_id: int, limit: int
) -> list[dict[str, Any]]:
    async with rt.db.read() as session:
        rows = await messages_repo.list_page(
            session, chat_id=chat_id, after_id=after_id, limit=limit
        )
    return [message_dict(row) for row in rows]
