"""Every route of the app as one flat list, across FastAPI versions.

Newer FastAPI keeps an included router as one lazy entry in ``app.routes`` instead of copying
its routes; the body limit (which routes stream their body) and the tests (which walk every
route) need the routes themselves, with their full paths.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from starlette.routing import BaseRoute, WebSocketRoute, compile_path


@dataclass(frozen=True)
class RouteInfo:
    path: str  # the full template, e.g. /api/v1/chat/workflows/{chat_id}/upload
    methods: frozenset[str]  # empty for a WebSocket
    endpoint: Callable[..., Any]
    websocket: bool
    regex: re.Pattern[str]

    def matches(self, path: str, method: str | None) -> bool:
        """Whether a request for ``path`` (and ``method``, for HTTP) is this route's."""
        if self.regex.match(path) is None:
            return False
        return self.websocket if method is None else method in self.methods


def walk(routes: Iterable[BaseRoute], prefix: str = "") -> list[RouteInfo]:
    """The routes under ``routes``, included routers expanded, with their full paths."""
    found: list[RouteInfo] = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:  # FastAPI >= 0.16x: an included router, not yet expanded
            context = getattr(route, "include_context", None)
            found += walk(inner.routes, prefix + getattr(context, "prefix", ""))
            continue
        path = getattr(route, "path", None)
        endpoint = getattr(route, "endpoint", None)
        if path is None or endpoint is None:
            continue
        full = prefix + path
        websocket = isinstance(route, WebSocketRoute)
        methods = frozenset() if websocket else frozenset(getattr(route, "methods", None) or ())
        found.append(RouteInfo(full, methods, endpoint, websocket, compile_path(full)[0]))
    return found
