"""Faults: a full disk during upload or output, and an upload that stalls."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import polars as pl
import pytest

from tests.support import create_chat, make_settings, run_server, seed_workflow, upload

API = "/api/v1"


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs for the server's files (the database stays on the real disk)."""
    files_dir = tmp_path / "data" / "files"
    files_dir.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(files_dir)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield files_dir
    finally:
        subprocess.run(["umount", "-l", str(files_dir)], check=False)


def _leftovers(files_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(files_dir)) for p in files_dir.rglob("*") if p.is_file())


def test_a_full_disk_gives_507_on_upload_and_a_failed_run_on_output(
    tmp_path: Path, tiny_disk: Path
) -> None:
    settings = make_settings(tmp_path / "data", max_upload_mb=10)
    with run_server(settings) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        chat_id = create_chat(client)
        big = tmp_path / "big.csv"
        big.write_bytes(b"code\n" + b"0123456789\n" * 150_000)  # 1.6 MB > 1 MiB
        response = upload(client, chat_id, big)
        assert response.status_code == 507, response.text
        assert response.json()["error"]["code"] == "disk_full"
        assert _leftovers(tiny_disk) == []

        half = tmp_path / "half.csv"
        pl.DataFrame({"code": [f"{i:010d}" for i in range(55_000)]}).write_csv(half)  # 600 KB
        assert upload(client, chat_id, half).status_code == 201
        run = client.post(
            f"{API}/chat/workflows/{chat_id}/execute",
            params={"wait": "true"},
            json=seed_workflow(columns=["code"], remove_duplicates=False, output="copy.csv"),
        ).json()["data"]
        assert run["status"] == "failed"
        assert run["error"]["code"] == "disk_full"
        assert run["outputs"] == []
        assert len(_leftovers(tiny_disk)) == 1  # only the upload; no partial output
        files = client.get(f"{API}/chat/workflows/{chat_id}/files").json()["data"]
        assert [f["filename"] for f in files] == ["half.csv"]
        assert client.get(f"{API}/health").json()["data"]["status"] == "ok"


def test_a_stalled_upload_is_dropped_with_408(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", upload_idle_timeout_s=0.5)
    with run_server(settings) as server, httpx.Client(base_url=server.url) as client:
        chat_id = create_chat(client)
        host, port = server.url.removeprefix("http://").split(":")
        head = (
            f"POST {API}/chat/workflows/{chat_id}/upload HTTP/1.1\r\n"
            f"Host: {host}:{port}\r\n"
            "Content-Type: multipart/form-data; boundary=b\r\n"
            "Content-Length: 100000\r\n\r\n"
            '--b\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n\r\n'
            "a,b\n1,2\n"
        )
        with socket.create_connection((host, int(port)), timeout=10) as raw:
            raw.sendall(head.encode())
            started = time.monotonic()
            reply = raw.recv(65536).decode()
            waited = time.monotonic() - started
        assert reply.startswith("HTTP/1.1 408"), reply
        assert '"code":"upload_stalled"' in reply
        assert waited < 5
        assert _leftovers(settings.files_dir) == []
        assert client.get(f"{API}/chat/workflows/{chat_id}/files").json()["data"] == []
