"""Absolute URLs handed to clients, built from the request's (or the configured) base URL."""

from __future__ import annotations

from urllib.parse import quote

API = "/api/v1"


def file_url(base: str, chat_id: str, name: str, version: int | None = None) -> str:
    url = f"{base}{API}/chat/workflows/{chat_id}/files/{quote(name, safe='')}"
    return url if version is None else f"{url}?version={version}"


def run_url(base: str, chat_id: str, run_id: str) -> str:
    return f"{base}{API}/chat/workflows/{chat_id}/runs/{run_id}"


def websocket_url(base: str, chat_id: str) -> str:
    scheme, _, rest = base.partition("://")
    ws_scheme = "wss" if scheme == "https" else "ws"
    return f"{ws_scheme}://{rest}/chat/{chat_id}"
