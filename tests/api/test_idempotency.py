"""Idempotency-Key on upload and execute: retries get the first answer and create nothing."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support import POSTAL_ROWS, create_chat, seed_workflow, write_xlsx

API = "/api/v1"

# The core flows hold on both databases (tests/conftest.py).
pytestmark = pytest.mark.both_databases


def _timings(header: str) -> list[str]:
    """The metric names of a Server-Timing header, each checked to carry a duration >= 0."""
    names = []
    for metric in header.split(","):
        name, duration = metric.strip().split(";dur=")
        assert float(duration) >= 0
        names.append(name)
    return names


def test_retried_upload_returns_the_first_answer_and_stores_once(
    client: httpx.Client, tmp_path: Path
) -> None:
    chat_id = create_chat(client)
    source = write_xlsx(tmp_path / "data.xlsx", POSTAL_ROWS)
    url = f"{API}/chat/workflows/{chat_id}/upload"
    headers = {"Idempotency-Key": "upload-1"}
    first = client.post(url, files={"file": ("data.xlsx", source.read_bytes())}, headers=headers)
    assert first.status_code == 201, first.text
    assert _timings(first.headers["server-timing"]) == [
        "receive",
        "inspect-wait",
        "inspect",
        "store",
    ]
    again = client.post(url, files={"file": ("data.xlsx", source.read_bytes())}, headers=headers)
    assert again.status_code == 201
    assert again.json() == first.json()
    assert "server-timing" not in again.headers  # a replay inspects nothing
    files = client.get(f"{API}/chat/workflows/{chat_id}/files").json()["data"]
    assert [(f["filename"], f["version"]) for f in files] == [("data.xlsx", 1)]
    other = write_xlsx(tmp_path / "other.xlsx", [["a"], ["1"]])
    reused = client.post(url, files={"file": ("data.xlsx", other.read_bytes())}, headers=headers)
    assert reused.status_code == 422
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
    events = client.get(f"{API}/chat/workflows/{chat_id}/events").json()["data"]
    assert [e["type"] for e in events].count("file_uploaded") == 1


def test_retried_execute_starts_one_run(client: httpx.Client, tmp_path: Path) -> None:
    chat_id = create_chat(client)
    client.post(
        f"{API}/chat/workflows/{chat_id}/upload",
        files={"file": ("data.xlsx", write_xlsx(tmp_path / "d.xlsx", POSTAL_ROWS).read_bytes())},
    )
    url = f"{API}/chat/workflows/{chat_id}/execute"
    headers = {"Idempotency-Key": "run-1"}
    first = client.post(url, params={"wait": "true"}, json=seed_workflow(), headers=headers)
    assert first.status_code == 200
    again = client.post(url, params={"wait": "true"}, json=seed_workflow(), headers=headers)
    assert again.status_code == 200
    assert again.json() == first.json()
    assert len(client.get(f"{API}/chat/workflows/{chat_id}/runs").json()["data"]) == 1
    different = client.post(url, json=seed_workflow(columns=["city"]), headers=headers)
    assert different.status_code == 422
    assert different.json()["error"]["code"] == "idempotency_key_reused"
    # Without a key, the same request is a new run; errors are never replayed.
    assert client.post(url, json=seed_workflow()).status_code == 202
    bad = {"Idempotency-Key": "bad-1"}
    assert client.post(url, json=seed_workflow(columns=["zip"]), headers=bad).status_code == 422
    assert client.post(url, json=seed_workflow(), headers=bad).status_code == 202
