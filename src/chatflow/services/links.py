"""Absolute URLs handed to clients, built from the request's (or the configured) base URL."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

API = "/api/v1"


def file_url(base: str, chat_id: str, name: str, version: int | None = None) -> str:
    url = f"{base}{API}/chat/workflows/{chat_id}/files/{quote(name, safe='')}"
    return url if version is None else f"{url}?version={version}"


def run_url(base: str, chat_id: str, run_id: str) -> str:
    return f"{base}{API}/chat/workflows/{chat_id}/runs/{run_id}"


def websocket_url(base: str, chat_id: str, port: int | None = None) -> str:
    """The chat's socket at ``base`` (ws/wss), or at the same host on another ``port``."""
    scheme, _, rest = base.partition("://")
    ws_scheme = "wss" if scheme == "https" else "ws"
    if port is not None:
        parts = urlsplit(base)
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        rest = f"{host}:{port}{parts.path}"
    return f"{ws_scheme}://{rest}/chat/{chat_id}"
