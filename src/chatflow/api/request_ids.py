"""Every HTTP request and WebSocket gets an id: the client's ``X-Request-ID`` when it is sane,
else a new one. Log lines made while serving it carry it (logs.REQUEST_ID), and HTTP responses
echo it back in ``X-Request-ID``."""

from __future__ import annotations

import re
import uuid

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatflow import logs

HEADER = "x-request-id"
# Printable ASCII, at most 128 characters: a client's id goes into logs and back into a header.
_SANE = re.compile(r"[\x20-\x7e]{1,128}")


def request_id_from(scope: Scope) -> str:
    """The client's X-Request-ID if sane (the first one, trimmed), else a new uuid4 hex."""
    for name, value in scope.get("headers", ()):
        if name == HEADER.encode():
            given = value.decode("latin-1").strip()
            if _SANE.fullmatch(given):
                return given
            break
    return uuid.uuid4().hex


class RequestIds:
    """Pure ASGI (no task of its own): the id is set in the context the route runs in."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope)
        token = logs.REQUEST_ID.set(request_id)
        try:
            if scope["type"] == "websocket":
                await self.app(scope, receive, send)
                return

            async def send_with_id(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message.setdefault("headers", [])
                    MutableHeaders(scope=message)[HEADER] = request_id
                await send(message)

            await self.app(scope, receive, send_with_id)
        finally:
            logs.REQUEST_ID.reset(token)
