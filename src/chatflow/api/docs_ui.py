"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), every file served from the package.

They replace FastAPI's own pages, which load their scripts, styles, fonts and favicon from
public CDNs and so are blank offline. The bundles are vendored from npm with their licences
(``docs_ui/VERSIONS.json``; ``make vendor-docs-ui``); docs/docs-ui.md says how and why.
"""

from __future__ import annotations

import html
from pathlib import Path
from string import Template

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from chatflow.api.assets import AssetDir, content_security_policy, html_headers
from chatflow.errors import NotFound

DOCS_UI = Path(__file__).resolve().parents[1] / "docs_ui"
ASSETS_PATH = "/docs/assets"

# Swagger UI needs nothing beyond this server's own files: its bundle and swagger-init.js are
# scripts here, its styles a stylesheet, its pictures data: URIs (already in the base policy).
SWAGGER_POLICY = content_security_policy()
# ReDoc's styles are written at run time by styled-components into <style> elements, which
# 'self' cannot cover, and it embeds one font as a data: URI. Both are allowed on /redoc only;
# its scripts stay 'self' with no inline script and no eval (docs/docs-ui.md).
REDOC_POLICY = content_security_policy(style_src=("'unsafe-inline'",), font_src=("data:",))


def make_router() -> APIRouter:
    """The docs routes; the pages and assets are read from the package here, once."""
    assets = AssetDir(DOCS_UI / "assets")
    swagger = Template((DOCS_UI / "swagger.html").read_text(encoding="utf-8"))
    redoc = Template((DOCS_UI / "redoc.html").read_text(encoding="utf-8"))
    router = APIRouter(include_in_schema=False)

    @router.get("/docs")
    async def swagger_ui(request: Request) -> HTMLResponse:
        return _page(swagger, request, SWAGGER_POLICY)

    @router.get("/redoc")
    async def redoc_ui(request: Request) -> HTMLResponse:
        return _page(redoc, request, REDOC_POLICY)

    @router.get(ASSETS_PATH + "/{name}")
    async def docs_asset(name: str, request: Request) -> Response:
        found = assets.response(name, request)
        if found is None:
            raise NotFound(f"no docs asset named {name!r}")
        return found

    return router


def _page(template: Template, request: Request, policy: str) -> HTMLResponse:
    """``template`` filled in for this app and mount point, with the page's policy."""
    root = request.scope.get("root_path", "")  # behind a proxy that strips a prefix
    body = template.substitute(
        title=html.escape(request.app.title),
        assets=html.escape(root + ASSETS_PATH),
        spec_url=html.escape(root + (request.app.openapi_url or "")),
    )
    return HTMLResponse(body, headers=html_headers(policy))
