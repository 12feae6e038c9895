"""Events table: each chat's ordered, replayable event log."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from chatflow.db.models import Chat, Event, utcnow


class ChatGone(Exception):
    """Events were published to a chat that no longer exists."""


# Built once: constructing and cache-keying the statements per call cost more than SQLite's own
# work for a one-event transaction (about half of the writer thread's time).
_TAKE_SEQS = (
    update(Chat)
    .where(Chat.id == bindparam("chat"))
    .values(last_seq=Chat.last_seq + bindparam("count"))
    .returning(Chat.last_seq)
)
_INSERT = insert(Event)


def take_seqs(conn: Connection, *, chat_id: str, count: int) -> int:
    """Reserve the chat's next ``count`` sequence numbers; returns the first.

    Synchronous, inside the caller's write transaction (``Database.run_write``), which then
    inserts the events with ``insert_events``: numbers and rows commit together."""
    last = conn.execute(_TAKE_SEQS, {"chat": chat_id, "count": count}).scalar_one_or_none()
    if last is None:
        raise ChatGone(chat_id)
    return int(last) - count + 1


def give_back_seqs(conn: Connection, *, chat_id: str, count: int) -> None:
    """Return the last ``count`` numbers ``take_seqs`` reserved in this transaction (events
    that were declined): the chat's row lock is still held, so nobody took any after them."""
    conn.execute(update(Chat).where(Chat.id == chat_id).values(last_seq=Chat.last_seq - count))


def insert_events(conn: Connection, *, chat_id: str, stored: list[dict[str, Any]]) -> None:
    """Insert events that already carry their ``seq``, in the caller's transaction."""
    now = utcnow()
    # One executemany through Core: the ORM's unit of work costs more than SQLite here.
    conn.execute(
        _INSERT,
        [
            {
                "chat_id": chat_id,
                "seq": body["seq"],
                "type": body["type"],
                "run_id": body.get("run_id"),
                "body": body,
                "created_at": now,
            }
            for body in stored
        ],
    )


async def list_since(
    session: AsyncSession, *, chat_id: str, since: int, limit: int | None = None
) -> list[dict[str, Any]]:
    query = (
        select(Event.body).where(Event.chat_id == chat_id, Event.seq > since).order_by(Event.seq)
    )
    if limit is not None:
        query = query.limit(limit)
    return list((await session.execute(query)).scalars())
