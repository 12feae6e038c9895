"""Files shipped inside the package (the chat page, the docs UI), served with caching and a CSP.

Nothing is fetched from another host at run time: every script, style, font and icon a page
uses is one of these files, and the Content-Security-Policy says so to the browser.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import Request, Response

# Revalidated after an hour: a new release's files are picked up without a hard reload, and an
# unchanged file costs a 304 (its ETag is its content's hash).
CACHE_CONTROL = "public, max-age=3600"

# Browsers disagree on these without a hint from the server.
_MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".map": "application/json",
    ".txt": "text/plain; charset=utf-8",
}


def content_security_policy(
    *,
    script_src: tuple[str, ...] = (),
    style_src: tuple[str, ...] = (),
    font_src: tuple[str, ...] = (),
    worker_src: str = "",
) -> str:
    """A policy allowing only this server's own files, plus what a page names (documented there).

    ``connect-src 'self'`` covers the API and, in current browsers, the same host's WebSocket.
    """
    directives = [
        "default-src 'self'",
        "script-src " + " ".join(("'self'", *script_src)),
        "style-src " + " ".join(("'self'", *style_src)),
        "img-src 'self' data:",
        "font-src " + " ".join(("'self'", *font_src)),
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ]
    if worker_src:
        directives.append(f"worker-src {worker_src}")
    return "; ".join(directives)


def html_headers(policy: str) -> dict[str, str]:
    """Headers for a page: its policy, no MIME sniffing, no framing, revalidated on each load."""
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }


@dataclass
class AssetDir:
    """One folder of the package, read once: name -> bytes, media type and ETag."""

    root: Path
    _files: dict[str, tuple[bytes, str, str]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        for path in sorted(self.root.rglob("*")):
            if path.is_file() and not path.name.startswith("."):
                body = path.read_bytes()
                name = path.relative_to(self.root).as_posix()
                media = _MEDIA_TYPES.get(path.suffix) or (
                    mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                )
                etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
                self._files[name] = (body, media, etag)

    def names(self) -> list[str]:
        return list(self._files)

    def response(self, name: str, request: Request) -> Response | None:
        """The file ``name`` (a 304 when the client holds it already), or None if not shipped."""
        found = self._files.get(name)  # a lookup in what was read: no path reaches the disk
        if found is None:
            return None
        body, media, etag = found
        headers = {
            "ETag": etag,
            "Cache-Control": CACHE_CONTROL,
            "X-Content-Type-Options": "nosniff",
        }
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(body, media_type=media, headers=headers)
