"""Chat events: build, persist (through the broadcaster) and replay."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

from sqlalchemy import Connection

from chatflow.broadcaster import Broadcaster, StoreFn
from chatflow.db.engine import Database
from chatflow.repositories import events as events_repo


class StoredEvent(dict[str, Any]):
    """A stored event; its JSON text is computed once, however many subscribers send it."""

    def __init__(self, event: dict[str, Any]) -> None:
        super().__init__(event)
        self.text = encode(self)


def encode(event: dict[str, Any]) -> str:
    """The wire form of an event (compact JSON)."""
    return json.dumps(event, separators=(",", ":"))


# An event body may carry, under this key, a function that writes the row the event announces
# and returns fields for the event: the store runs it in the event's own transaction, so the
# row and its event are committed together or not at all.  The broadcaster never sees it run.
_WITH_ROW = "__with_row__"
WithRow = Callable[[Connection], dict[str, Any]]


class Declined(Exception):
    """Raised by a ``with_row`` whose conditional write found nothing to change (a run already
    moved by another process): its event is dropped, the rest of the batch is stored."""


def make_store(db: Database) -> StoreFn:
    """The broadcaster's store: one write transaction per batch, sequence numbers per chat."""

    def write(
        chat_id: str, bodies: list[dict[str, Any]], conn: Connection
    ) -> list[StoredEvent | None]:
        # Runs on the writer thread, so the events are also JSON-encoded off the event loop.
        # Numbers first: they take the chat's row lock, which numbering file versions in a
        # ``with_row`` relies on, and a deleted chat fails here (ChatGone) before any row.
        first = events_repo.take_seqs(conn, chat_id=chat_id, count=len(bodies))
        written = [_with_row_written(body, conn) for body in bodies]
        kept = [body for body in written if body is not None]
        if len(kept) < len(bodies):  # declined events take no number
            events_repo.give_back_seqs(conn, chat_id=chat_id, count=len(bodies) - len(kept))
        seqs = iter(range(first, first + len(kept)))
        stored = [None if body is None else {**body, "seq": next(seqs)} for body in written]
        if kept:
            events_repo.insert_events(
                conn, chat_id=chat_id, stored=[event for event in stored if event is not None]
            )
        return [None if event is None else StoredEvent(event) for event in stored]

    async def store(chat_id: str, bodies: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
        return list(await db.run_write(partial(write, chat_id, bodies)))

    return store


def _with_row_written(body: dict[str, Any], conn: Connection) -> dict[str, Any] | None:
    """The event with its row written, or None if its ``with_row`` declined."""
    with_row: WithRow | None = body.get(_WITH_ROW)
    if with_row is None:
        return body
    try:
        fields = with_row(conn)
    except Declined:
        return None
    return {**{k: v for k, v in body.items() if k != _WITH_ROW}, **fields}


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


async def emit(
    broadcaster: Broadcaster,
    *,
    chat_id: str,
    type: str,
    message: str,
    run_id: str | None = None,
    with_row: WithRow | None = None,
    **payload: Any,
) -> dict[str, Any] | None:
    """Publish one event to the chat's subscribers after storing it; returns it with its seq,
    or None if its ``with_row`` declined (raised ``Declined``).

    ``with_row(conn)`` writes the row the event announces in the event's transaction and
    returns more fields for the event (only with the service's store, ``make_store``).
    """
    body = event_body(
        chat_id=chat_id, type=type, message=message, run_id=run_id, with_row=with_row, **payload
    )
    return await broadcaster.publish(chat_id, body)


async def emit_all(
    broadcaster: Broadcaster, *, chat_id: str, bodies: list[dict[str, Any]]
) -> list[dict[str, Any] | None]:
    """Publish events (from ``event_body``) stored in one transaction: all of them or none."""
    return await broadcaster.publish_all(chat_id, bodies)


def event_body(
    *,
    chat_id: str,
    type: str,
    message: str,
    run_id: str | None = None,
    with_row: WithRow | None = None,
    **payload: Any,
) -> dict[str, Any]:
    """An event to publish; ``with_row``'s fields, written in its transaction, win over these."""
    body: dict[str, Any] = {"type": type, "chat_id": chat_id, "run_id": run_id}
    body["timestamp"] = now_iso()
    body["message"] = message
    body.update(payload)
    if with_row is not None:
        body[_WITH_ROW] = with_row
    return body


async def list_since(
    db: Database, *, chat_id: str, since: int, limit: int | None = None
) -> list[dict[str, Any]]:
    async with db.read() as session:
        return await events_repo.list_since(session, chat_id=chat_id, since=since, limit=limit)
