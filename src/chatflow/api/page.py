"""The chat page: its HTML at ``/`` and its scripts, styles and icon under ``/ui/``.

The page is a client of the public API and WebSocket only (docs/page.md); these routes serve
files and nothing else, so they need no API key (the page asks for one when the API does).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request, Response

from chatflow.api.assets import AssetDir, content_security_policy, html_headers
from chatflow.errors import NotFound

# The assets ship inside the package (and so the wheel), beside the code that serves them.
WEB_DIR = Path(__file__).resolve().parent.parent / "web"
INDEX = "index.html"


def page_router(assets: AssetDir) -> APIRouter:
    """Routes serving ``assets``: the page at ``/``, every other file at ``/ui/{name}``."""
    router = APIRouter(include_in_schema=False)
    # Only this server's files: no inline script or style, nothing from another host.
    headers = html_headers(content_security_policy())

    @router.get("/")
    async def chat_page(request: Request) -> Response:
        """The page itself."""
        response = assets.response(INDEX, request)
        if response is None:  # a broken install, not a client's mistake
            raise RuntimeError(f"{INDEX} is missing from {assets.root}")
        response.headers.update(headers)
        return response

    @router.get("/ui/{name:path}")
    async def page_asset(name: str, request: Request) -> Response:
        """One of the page's scripts, styles or icons, with its ETag."""
        response = assets.response(name, request) if name != INDEX else None
        if response is None:
            raise NotFound(f"no page asset named {name!r}", code="not_found")
        return response

    return router
