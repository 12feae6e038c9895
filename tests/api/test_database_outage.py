"""PostgreSQL unreachable for a while: requests get 503 with Retry-After, never 500, and the
service recovers by itself when it is back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.postgres import CuttableProxy, PostgresDatabases
from tests.support import (
    POSTAL_ROWS,
    create_chat,
    make_settings,
    run_server,
    seed_workflow,
    upload,
    write_xlsx,
)

API = "/api/v1"


@pytest.fixture
def proxy() -> Iterator[CuttableProxy]:
    cuttable = CuttableProxy()
    cuttable.open()
    try:
        yield cuttable
    finally:
        cuttable.close()


def test_an_unreachable_database_gives_503_then_the_service_recovers(
    postgres: PostgresDatabases, proxy: CuttableProxy, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path / "data", database_url=proxy.url(postgres.fresh()))
    with run_server(settings) as live, httpx.Client(base_url=live.url, timeout=60) as client:
        chat_id = create_chat(client, "before")
        proxy.cut()
        answers = [
            client.get(f"{API}/chat/workflows/{chat_id}"),
            client.get(f"{API}/chat/workflows/{chat_id}/events", params={"since": 0}),
            client.post(f"{API}/chat/workflows", json={"title": "during"}),
            client.post(f"{API}/chat/workflows/{chat_id}/messages", json={"text": "hi"}),
        ]
        for answer in answers:
            assert answer.status_code == 503, answer.text
            assert answer.headers["Retry-After"] == "2"
            assert answer.json()["error"]["code"] == "database_unavailable"
        assert client.get(f"{API}/health").json()["data"]["status"] == "degraded"

        proxy.open()
        assert client.get(f"{API}/chat/workflows/{chat_id}").json()["data"]["title"] == "before"
        said = client.post(f"{API}/chat/workflows/{chat_id}/messages", json={"text": "back"})
        assert said.status_code == 201, said.text
        listed = client.get(f"{API}/chat/workflows").json()["data"]["items"]
        titles = [c["title"] for c in listed]
        assert titles == ["before"]  # nothing was half-made while it was cut
        assert client.get(f"{API}/health").json()["data"]["status"] == "ok"
        # Runs go through the job queue on this database: its worker lost its connections
        # (the listener included) and must have started again by itself.
        upload(client, chat_id, write_xlsx(tmp_path / "postal.xlsx", POSTAL_ROWS))
        ran = client.post(
            f"{API}/chat/workflows/{chat_id}/execute",
            params={"wait": "true", "timeout": 60},
            json=seed_workflow(),
        )
        assert ran.status_code == 200, ran.text
        assert ran.json()["data"]["status"] == "completed"
