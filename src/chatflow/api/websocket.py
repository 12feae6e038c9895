"""Live events of a chat over a WebSocket: replay from ``?since=N``, then follow."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Query, WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from chatflow import logs
from chatflow.auth import bearer_token
from chatflow.broadcaster import Subscription, SubscriptionClosed
from chatflow.errors import NotFound
from chatflow.metrics import Metrics
from chatflow.runtime import Runtime
from chatflow.services import chats, events
from chatflow.services.events import StoredEvent

log = logging.getLogger(__name__)

router = APIRouter()
# Out-of-range values fail validation, which closes the socket with 1008 (policy violation).
Since = Annotated[int | None, Query(ge=0, le=2**62)]

REPLAY_PAGE = 500
# Queued events taken at once per subscriber (one frame in batch mode).
FORWARD_BATCH = 500
# A batch frame grows up to this many bytes of events (clients' default max frame is 1 MiB).
BATCH_FRAME_BYTES = 64 * 1024
AUTH_TIMEOUT_S = 5.0
CLOSE_WAIT_S = 10.0
CLOSE_CODES = {
    "overflow": (1013, "subscriber too slow; reconnect with ?since=<last seq>"),
    "shutdown": (1001, "server shutting down; reconnect with ?since=<last seq>"),
    "deleted": (4404, "chat deleted"),
}


class _Connection:
    """One subscriber's socket and the last seq delivered on it.

    Events are sent by one task (``_follow``); answers to the client (pong) may go out between
    two event frames, never inside one: uvicorn writes each message whole.
    """

    def __init__(self, websocket: WebSocket, last_seq: int, batch: bool, metrics: Metrics) -> None:
        self.websocket = websocket
        self.last_seq = last_seq
        self.batch = batch
        self.metrics = metrics

    async def send(self, payload: dict[str, Any]) -> None:
        await self.websocket.send_text(_text(payload))

    async def send_events(self, batch: list[dict[str, Any]]) -> None:
        """Send the events not sent yet, in order: one frame each, or JSON arrays in batch mode."""
        # Events replayed from storage may also arrive live: the seq says which were sent.
        last = self.last_seq
        batch = [event for event in batch if event["seq"] > last]
        if not batch:
            return
        send_text = self.websocket.send_text
        if self.batch:
            for frame in _array_frames([_text(event) for event in batch]):
                await send_text(frame)
        else:
            for event in batch:
                await send_text(_text(event))
        self.last_seq = batch[-1]["seq"]
        self.metrics.events_delivered(len(batch))


def _text(payload: dict[str, Any]) -> str:
    return payload.text if isinstance(payload, StoredEvent) else events.encode(payload)


def _array_frames(texts: list[str]) -> list[str]:
    """JSON arrays of encoded events, each at most BATCH_FRAME_BYTES unless one event is larger."""
    frames: list[str] = []
    start = size = 0
    for i, text in enumerate(texts):
        if i > start and size + len(text) > BATCH_FRAME_BYTES:
            frames.append("[" + ",".join(texts[start:i]) + "]")
            start, size = i, 0
        size += len(text) + 1
    frames.append("[" + ",".join(texts[start:]) + "]")
    return frames


async def _replay(rt: Runtime, conn: _Connection, chat_id: str) -> None:
    while True:
        page = await events.list_since(
            rt.db, chat_id=chat_id, since=conn.last_seq, limit=REPLAY_PAGE
        )
        await conn.send_events(page)
        if len(page) < REPLAY_PAGE:
            return


async def _forward(rt: Runtime, subscription: Subscription, conn: _Connection) -> None:
    while True:
        batch = await subscription.get_many(FORWARD_BATCH)
        if batch[0]["seq"] > conn.last_seq + 1:
            # Events reached this process out of reach of this socket (before it subscribed, or
            # from another process): the stored ones come first, so it never sees a gap.
            await _replay(rt, conn, subscription.topic)
        await conn.send_events(batch)


async def _answer(conn: _Connection) -> None:
    """Handle client messages until the client goes away."""
    while True:
        message = await conn.websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        try:
            data = json.loads(message.get("text") or message.get("bytes") or b"")
        except ValueError:
            data = None
        if isinstance(data, dict) and data.get("type") == "ping":
            await conn.send({"type": "pong"})
        else:
            await conn.send(
                {
                    "type": "error",
                    "code": "unknown_message",
                    "message": 'only {"type": "ping"} is understood on this socket',
                }
            )


async def _serve(websocket: WebSocket, chat_id: str, since: int | None, batch: bool) -> None:
    rt: Runtime = websocket.state.runtime
    rt.open_sockets += 1
    try:
        await _serve_accepted(rt, websocket, chat_id, since, batch)
    finally:
        rt.open_sockets -= 1


async def _serve_accepted(
    rt: Runtime, websocket: WebSocket, raw_chat_id: str, since: int | None, batch: bool
) -> None:
    # A socket is subscribed only once it has authenticated and the chat is its owner's, so
    # one waiting for its auth message receives nothing and is not counted as a subscriber.
    # Nothing published after the handshake is lost meanwhile: without ?since= the socket
    # starts from the chat's last seq as of the handshake and replays the gap from storage
    # (de-duplicated by seq against what then arrives live).
    start = since if since is not None else await _last_seq(rt, raw_chat_id)
    await websocket.accept()
    if not _origin_allowed(rt, websocket):
        await websocket.close(4403, "origin not allowed")
        return
    try:
        owner = await _authenticate(rt, websocket)
    except PermissionError:
        await websocket.close(4401, "unauthorized: a valid API key is required")
        return
    try:
        chat = await chats.require(rt=rt, chat_id=raw_chat_id, owner=owner)
    except NotFound:
        await websocket.close(4404, "chat not found")
        return
    logs.CHAT_ID.set(chat.id)  # this handler's task and the tasks it starts below
    conn = _Connection(websocket, start, batch, rt.metrics)
    async with rt.broadcaster.subscribe(chat.id) as subscription:
        tasks = [
            asyncio.create_task(_follow(rt, conn, subscription, chat.id)),
            asyncio.create_task(_answer(conn)),
            asyncio.create_task(subscription.closed.wait()),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        close_code = CLOSE_CODES.get(subscription.close_reason or "")
    if close_code and websocket.client_state == WebSocketState.CONNECTED:
        # The close frame queues behind what the subscriber has not read yet; one that resumes
        # reading within CLOSE_WAIT_S gets it, one that never does is dropped after that.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(websocket.close(*close_code), timeout=CLOSE_WAIT_S)


async def _last_seq(rt: Runtime, raw_chat_id: str) -> int:
    """The chat's latest seq, whoever owns it (nothing is sent before the owner is checked)."""
    try:
        chat = await chats.require(rt=rt, chat_id=raw_chat_id, owner=None)
    except NotFound:
        return 0
    return chat.last_seq


def _origin_allowed(rt: Runtime, websocket: WebSocket) -> bool:
    """Refuse cross-site pages (WebSocket hijacking): browsers always send Origin."""
    origin = websocket.headers.get("origin")
    if origin is None:
        return True  # not a browser
    allowed = rt.settings.allowed_origin_list
    if allowed:
        return "*" in allowed or origin.rstrip("/") in allowed
    return urlsplit(origin).netloc == websocket.headers.get("host")


async def _authenticate(rt: Runtime, websocket: WebSocket) -> str | None:
    """The owner id from the Authorization header, ?token=, or a first auth message."""
    if not rt.keys.enabled:
        return None
    token = bearer_token(websocket.headers.get("authorization"))
    token = token or websocket.query_params.get("token")
    if token is None:
        try:
            first = await asyncio.wait_for(websocket.receive_text(), AUTH_TIMEOUT_S)
            message = json.loads(first)
        except (TimeoutError, ValueError, KeyError, RuntimeError, WebSocketDisconnect):
            raise PermissionError from None
        if isinstance(message, dict) and message.get("type") == "auth":
            token = str(message.get("token") or "")
    owner = rt.keys.owner_of(token)
    if owner is None:
        raise PermissionError
    return owner


async def _follow(rt: Runtime, conn: _Connection, subscription: Subscription, chat_id: str) -> None:
    await _replay(rt, conn, chat_id)
    with contextlib.suppress(SubscriptionClosed):
        await _forward(rt, subscription, conn)


@router.websocket("/chat/{chat_id}")
async def chat_events(
    websocket: WebSocket, chat_id: str, since: Since = None, batch: bool = False
) -> None:
    """Follow a chat's events (the seed's path)."""
    await _serve(websocket, chat_id, since, batch)


@router.websocket("/api/v1/chat/workflows/{chat_id}/ws")
async def chat_events_v1(
    websocket: WebSocket, chat_id: str, since: Since = None, batch: bool = False
) -> None:
    """Follow a chat's events."""
    await _serve(websocket, chat_id, since, batch)
