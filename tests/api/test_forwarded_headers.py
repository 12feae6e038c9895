"""Links behind a load balancer: X-Forwarded-Proto is believed from CHATFLOW_FORWARDED_ALLOW_IPS
only, and the links a response carries use the Host and scheme the client used."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support import create_chat, make_settings, run_server

HTTPS = {"X-Forwarded-Proto": "https", "Host": "chat.example:8443"}


@pytest.mark.parametrize(
    ("allowed", "scheme"),
    [("127.0.0.1", "https"), ("*", "https"), ("10.9.9.9", "http")],
    ids=["loopback-default", "any", "another-proxy"],
)
def test_forwarded_proto_is_believed_only_from_trusted_addresses(
    tmp_path: Path, allowed: str, scheme: str
) -> None:
    settings = make_settings(tmp_path / "data", forwarded_allow_ips=allowed)
    ws_scheme = "wss" if scheme == "https" else "ws"
    with (
        run_server(settings) as server,
        httpx.Client(base_url=server.url, timeout=30, headers=HTTPS) as client,
    ):
        chat_id = create_chat(client)
        chat = client.get(f"/api/v1/chat/workflows/{chat_id}").json()["data"]
    assert chat["websocket_url"] == f"{ws_scheme}://chat.example:8443/chat/{chat_id}"
