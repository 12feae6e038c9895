"""A ceiling on request bodies, enforced while they arrive and before anything parses them.

Every HTTP request body except the streaming upload's (which has its own per-file limit, see
uploads.py) is read here up to ``max_bytes`` and handed on whole; one byte more, announced by
Content-Length or counted as chunks arrive, and the answer is 413 ``body_too_large`` without
the rest being kept. The upload route is named by the routes themselves (``streams_body``), so
a new route is limited unless it says otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatflow.api.errors import error_response
from chatflow.api.routes import RouteInfo, walk
from chatflow.errors import BodyTooLarge

STREAMS_BODY = "streams_body"


def streams_body(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """Mark an endpoint that reads its own body as a stream, with its own limits."""
    setattr(endpoint, STREAMS_BODY, True)
    return endpoint


def streaming_routes(routes: Iterable[BaseRoute]) -> list[RouteInfo]:
    """The routes whose endpoint is marked with ``streams_body``."""
    return [info for info in walk(routes) if getattr(info.endpoint, STREAMS_BODY, False)]


class BodyLimit:
    """ASGI middleware: 413 for a body over ``max_bytes`` on any route but ``streaming``."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, streaming: list[RouteInfo]) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.streaming = streaming

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._streams(scope):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away mid-body: there is no one to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    def _streams(self, scope: Scope) -> bool:
        path, method = scope["path"], scope["method"]
        return any(route.matches(path, method) for route in self.streaming)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit_kb = self.max_bytes // 1024
        response = error_response(
            BodyTooLarge.status,
            BodyTooLarge.code,
            f"the request body is larger than {limit_kb} KiB (CHATFLOW_MAX_JSON_KB)",
            {"limit_bytes": self.max_bytes},
        )
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` in one message, then whatever the client does next."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
