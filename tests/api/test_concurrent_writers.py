"""Many clients writing to one chat at once: every event gets its own seq, with no gap."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import LiveServer, create_chat, seed_workflow

pytestmark = pytest.mark.both_databases

API = "/api/v1"
WRITERS = 20


def _upload_then_run(server: LiveServer, chat_id: str, source: Path, n: int) -> dict[str, Any]:
    """One client: the same file name as every other client, then a run on its own version."""
    with httpx.Client(base_url=server.url, timeout=120) as client:
        with source.open("rb") as handle:
            uploaded = client.post(
                f"{API}/chat/workflows/{chat_id}/upload", files={"file": ("codes.csv", handle)}
            )
        assert uploaded.status_code == 201, uploaded.text
        version = uploaded.json()["data"][0]["version"]
        client.post(f"{API}/chat/workflows/{chat_id}/messages", json={"text": f"writer {n}"})
        body = {**seed_workflow(), "input": "codes.csv"}
        ran = client.post(
            f"{API}/chat/workflows/{chat_id}/execute", params={"wait": "true"}, json=body
        )
        assert ran.status_code == 200, ran.text
        return {"version": version, "run": ran.json()["data"]}


def test_concurrent_uploads_and_runs_on_one_chat_give_gap_free_unique_seqs(
    server: LiveServer, client: httpx.Client, tmp_path: Path
) -> None:
    chat_id = create_chat(client)
    source = tmp_path / "codes.csv"
    source.write_text("name,postal_code\nAna,01234\nBen,98765\nCy,01234\n")
    with ThreadPoolExecutor(WRITERS) as pool:
        futures = [
            pool.submit(_upload_then_run, server, chat_id, source, n) for n in range(WRITERS)
        ]
        results = [future.result() for future in futures]

    assert sorted(r["version"] for r in results) == list(range(1, WRITERS + 1))
    assert {r["run"]["status"] for r in results} == {"completed"}
    events = client.get(f"{API}/chat/workflows/{chat_id}/events", params={"since": 0})
    assert events.status_code == 200
    stored = events.json()["data"]
    assert [e["seq"] for e in stored] == list(range(1, len(stored) + 1))
    types = [e["type"] for e in stored]
    for kind in ("file_uploaded", "workflow_started", "workflow_completed"):
        assert types.count(kind) == WRITERS, kind
    said = sorted(e["entry"]["text"] for e in stored if e["type"] == "message_added")
    assert [text for text in said if text.startswith("writer ")] == sorted(
        f"writer {n}" for n in range(WRITERS)
    )
    # Every output has a version of its name of its own, numbered from 1 without a gap.
    files = client.get(f"{API}/chat/workflows/{chat_id}/files").json()["data"]
    outputs = [f for f in files if f["source"] == "output"]
    assert len(outputs) == WRITERS
    versions: dict[str, list[int]] = {}
    for row in outputs:
        versions.setdefault(row["filename"], []).append(row["version"])
    assert all(sorted(v) == list(range(1, len(v) + 1)) for v in versions.values()), versions
    # Replay from the middle gives exactly the rest.
    middle = len(stored) // 2
    rest = client.get(f"{API}/chat/workflows/{chat_id}/events", params={"since": middle})
    assert rest.json()["data"] == stored[middle:]
