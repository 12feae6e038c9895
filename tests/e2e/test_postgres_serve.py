"""``chatflow serve`` on PostgreSQL, set by CHATFLOW_DATABASE_URL alone, as an operator runs it."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.postgres import PostgresDatabases
from tests.support import (
    POSTAL_ROWS,
    chatflow_process,
    create_chat,
    free_ports,
    seed_workflow,
    upload,
    write_xlsx,
)

API = "/api/v1"


def test_serve_runs_on_postgresql_and_keeps_everything_across_a_restart(
    postgres: PostgresDatabases, tmp_path: Path
) -> None:
    url = postgres.fresh()
    env = {"CHATFLOW_DATABASE_URL": url}
    data_dir = tmp_path / "data"
    source = write_xlsx(tmp_path / "data.xlsx", POSTAL_ROWS)

    (port,) = free_ports(1)
    with (
        chatflow_process(data_dir, tmp_path / "first.log", port=port, env=env),
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client,
    ):
        chat_id = create_chat(client, "on postgres")
        assert upload(client, chat_id, source).status_code == 201
        run = client.post(
            f"{API}/chat/workflows/{chat_id}/execute",
            params={"wait": "true"},
            json=seed_workflow(),
        )
        assert run.status_code == 200, run.text
        assert run.json()["data"]["status"] == "completed"
        output = client.get(run.json()["data"]["outputs"][0]["download_url"]).content
        events = client.get(f"{API}/chat/workflows/{chat_id}/events", params={"since": 0})
        before = events.json()["data"]
    # Nothing was in the SQLite file: the metadata went to PostgreSQL.
    assert not (data_dir / "chatflow.db").exists()

    (port,) = free_ports(1)
    with (
        chatflow_process(data_dir, tmp_path / "second.log", port=port, env=env),
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client,
    ):
        events = client.get(f"{API}/chat/workflows/{chat_id}/events", params={"since": 0})
        assert events.json()["data"] == before
        assert [e["seq"] for e in before] == list(range(1, len(before) + 1))
        chat = client.get(f"{API}/chat/workflows/{chat_id}").json()["data"]
        assert chat["title"] == "on postgres"
        assert [r["status"] for r in chat["runs"]] == ["completed"]
        name = chat["runs"][0]["outputs"][0]["filename"]
        assert client.get(f"{API}/chat/workflows/{chat_id}/files/{name}").content == output
        health = client.get(f"{API}/health").json()["data"]
        assert health["status"] == "ok"
