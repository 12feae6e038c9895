"""Runs: failures, ordering within a chat, waiting, and recovery after a crash."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import psutil
import pytest
import xlsxwriter
from websockets.exceptions import ConnectionClosed

from tests.support import (
    POSTAL_ROWS,
    LiveServer,
    chatflow_process,
    create_chat,
    free_ports,
    make_settings,
    receive_until,
    run_server,
    seed_workflow,
    subscribe,
    upload,
    write_xlsx,
)

pytestmark = pytest.mark.both_databases  # the module server: SQLite, then PostgreSQL + Redis

API = "/api/v1"


def test_a_failing_workflow_reports_workflow_failed_with_the_step(
    server: LiveServer, client: httpx.Client, tmp_path: Path
) -> None:
    path = tmp_path / "two.xlsx"
    workbook = xlsxwriter.Workbook(str(path))
    first = workbook.add_worksheet("People")
    for r, row in enumerate(POSTAL_ROWS):
        first.write_row(r, 0, row)
    other = workbook.add_worksheet("Other")
    other.write_row(0, 0, ["id", "amount"])
    other.write_row(1, 0, ["1", "2"])
    workbook.close()
    chat_id = create_chat(client)
    upload(client, chat_id, path)

    with subscribe(f"{server.ws_url}/chat/{chat_id}") as ws:
        response = client.post(
            f"{API}/chat/workflows/{chat_id}/execute",
            json=seed_workflow(sheet="Other"),
        )
        assert response.status_code == 202
        events = receive_until(ws, {"workflow_completed", "workflow_failed"})

    types = [e["type"] for e in events]
    assert types[:2] == ["workflow_started", "step_started"]
    assert types[-1] == "workflow_failed"
    assert "workflow_completed" not in types
    error = events[-1]["error"]
    assert error["code"] == "column_not_found"
    assert error["step"] == 1
    assert "'postal_code'" in error["message"] and "id, amount" in error["message"]
    progress = [e["progress"] for e in events if e["type"] == "progress"]
    assert progress == sorted(progress) and progress[0] == 0

    run = client.get(response.json()["data"]["status_url"]).json()["data"]
    assert run["status"] == "failed"
    assert run["error"]["code"] == "column_not_found"
    assert run["steps"][0]["status"] == "failed"
    assert run["outputs"] == []
    messages = client.get(f"{API}/chat/workflows/{chat_id}/messages").json()["data"]
    assert messages[-1]["text"].startswith(f"Run {run['run_id']} failed: ")


def test_runs_of_one_chat_execute_in_submission_order(client: httpx.Client, tmp_path: Path) -> None:
    chat_id = create_chat(client)
    upload(client, chat_id, write_xlsx(tmp_path / "data.xlsx", POSTAL_ROWS))
    run_ids = []
    for i in range(4):
        response = client.post(
            f"{API}/chat/workflows/{chat_id}/execute",
            json=seed_workflow(output=f"out{i}.xlsx"),
        )
        assert response.status_code == 202
        assert response.json()["data"]["status"] == "queued"
        run_ids.append(response.json()["data"]["run_id"])
    deadline = time.monotonic() + 60
    while True:
        runs = client.get(f"{API}/chat/workflows/{chat_id}/runs").json()["data"]
        if all(r["status"] == "completed" for r in runs) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert [r["status"] for r in runs] == ["completed"] * 4
    by_id = {r["run_id"]: r for r in runs}
    ordered = [by_id[run_id] for run_id in run_ids]
    for earlier, later in zip(ordered, ordered[1:], strict=False):
        assert earlier["finished_at"] <= later["started_at"]
    events = client.get(f"{API}/chat/workflows/{chat_id}/events").json()["data"]
    started = [e["run_id"] for e in events if e["type"] == "workflow_started"]
    assert started == run_ids


def test_wait_true_returns_the_finished_run(client: httpx.Client, tmp_path: Path) -> None:
    chat_id = create_chat(client)
    upload(client, chat_id, write_xlsx(tmp_path / "data.xlsx", POSTAL_ROWS))
    response = client.post(
        f"{API}/chat/workflows/{chat_id}/execute",
        params={"wait": "true"},
        json=seed_workflow(columns=["city", "name"], remove_duplicates=False, output="picked.csv"),
    )
    assert response.status_code == 200
    run = response.json()["data"]
    assert run["status"] == "completed"
    assert run["duration_ms"] is not None
    (output,) = run["outputs"]
    assert output["filename"] == "picked.csv"
    assert output["media_type"] == "text/csv"
    body = httpx.get(output["download_url"]).text
    assert body.splitlines() == [
        "city,name",
        "Lisbon,Ana",
        "Porto,Ben",
        "Lisbon,Cy",
        "Holtsville,Dee",
        "Porto,Eve",
    ]


@contextmanager
def _server_process(data_dir: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """``chatflow serve`` with two worker processes; its log beside its data dir."""
    log = data_dir.parent / f"server-{port}-{time.monotonic_ns()}.log"
    env = {"CHATFLOW_WORKER_PROCESSES": "2"}
    with chatflow_process(data_dir, log, port=port, env=env) as process:
        yield process


def _child_kind(child: psutil.Process) -> str:
    try:
        command = " ".join(child.cmdline())
    except psutil.ZombieProcess:
        return "inspection"  # an inspection child that has exited and is not yet reaped
    if "step_jobs" in command:
        return "step worker"
    return "inspection" if "child_main" in command else command


@pytest.mark.slow  # kill or restart
def test_kill_9_mid_run_then_restart_marks_it_interrupted_and_loses_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    big = tmp_path / "big.csv"
    pl.DataFrame({"code": [f"{i:07d}" for i in range(200_000)], "n": range(200_000)}).write_csv(big)
    (port,) = free_ports(1)
    base = f"http://127.0.0.1:{port}"
    with (
        _server_process(data_dir, port) as process,
        httpx.Client(base_url=base, timeout=30) as client,
    ):
        chat_id = create_chat(client)
        uploaded = upload(client, chat_id, big).json()["data"][0]
        with subscribe(f"ws://127.0.0.1:{port}/chat/{chat_id}") as ws:
            run_id = client.post(
                f"{API}/chat/workflows/{chat_id}/execute", json=seed_workflow(columns=["code"])
            ).json()["data"]["run_id"]
            while True:  # kill while the step is writing its output
                event = json.loads(ws.recv(timeout=30))
                if event["type"] == "progress" and event["progress"] >= 75:
                    break
            children = psutil.Process(process.pid).children()
            kinds = sorted(_child_kind(child) for child in children)
            os.kill(process.pid, signal.SIGKILL)
            process.wait(10)
            # The worker processes (one of them busy writing) and the spare inspection
            # processes do not outlive the server (checked before chatflow_process would kill
            # any left), and the busy worker did not finish its write: nothing but the upload
            # (and temp files) is on disk.
            assert psutil.wait_procs(children, timeout=10)[1] == []
    assert kinds.count("step worker") == 2 and set(kinds) == {"step worker", "inspection"}
    on_disk = [p.name for p in (data_dir / "files" / chat_id).iterdir()]
    assert len([name for name in on_disk if not name.startswith(".")]) == 1

    with _server_process(data_dir, port), httpx.Client(base_url=base, timeout=30) as client:
        run = client.get(f"{API}/chat/workflows/{chat_id}/runs/{run_id}").json()["data"]
        assert run["status"] == "interrupted"
        assert run["error"]["code"] == "interrupted"
        assert run["outputs"] == []
        events = client.get(f"{API}/chat/workflows/{chat_id}/events").json()["data"]
        assert events[-1]["type"] == "workflow_failed"
        assert events[-1]["run_id"] == run_id
        assert events[-1]["error"]["code"] == "interrupted"
        seqs = [e["seq"] for e in events]
        assert seqs == list(range(1, len(seqs) + 1))
        # The upload is intact; no half-written file is left anywhere.
        assert client.get(uploaded["download_url"]).content == big.read_bytes()
        leftovers = [p.name for p in (data_dir / "files" / chat_id).iterdir()]
        assert len(leftovers) == 1 and not leftovers[0].startswith(".")
        # The chat can run again.
        small = tmp_path / "small.csv"
        small.write_text("code,n\n0001,1\n0002,2\n0001,3\n")
        upload(client, chat_id, small)
        again = client.post(
            f"{API}/chat/workflows/{chat_id}/execute",
            params={"wait": "true"},
            json=seed_workflow(columns=["code"]),
        ).json()["data"]
        assert again["status"] == "completed"
        assert again["outputs"][0]["row_count"] == 2


@pytest.mark.slow  # kill or restart
def test_runs_left_running_by_a_crash_are_interrupted_at_start_up(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    with run_server(settings) as server, httpx.Client(base_url=server.url) as client:
        chat_id = create_chat(client)
        upload(client, chat_id, write_xlsx(tmp_path / "data.xlsx", POSTAL_ROWS))
        run_id = client.post(
            f"{API}/chat/workflows/{chat_id}/execute", params={"wait": "true"}, json=seed_workflow()
        ).json()["data"]["run_id"]
    # What a crash leaves behind: a run still marked running.
    with sqlite3.connect(settings.resolved_data_dir / "chatflow.db") as db:
        db.execute("UPDATE runs SET status='running', finished_at=NULL WHERE id=?", (run_id,))
    with run_server(settings) as server, httpx.Client(base_url=server.url) as client:
        run = client.get(f"{API}/chat/workflows/{chat_id}/runs/{run_id}").json()["data"]
        assert run["status"] == "interrupted"
        last: dict[str, Any] = client.get(f"{API}/chat/workflows/{chat_id}/events").json()["data"][
            -1
        ]
        assert (last["type"], last["run_id"], last["error"]["code"]) == (
            "workflow_failed",
            run_id,
            "interrupted",
        )


@pytest.mark.slow  # kill or restart
def test_sigterm_lets_the_running_step_finish_and_closes_sockets_with_1001(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    big = tmp_path / "big.csv"
    pl.DataFrame({"code": [f"{i:07d}" for i in range(100_000)]}).write_csv(big)
    (port,) = free_ports(1)
    base = f"http://127.0.0.1:{port}"
    with (
        _server_process(data_dir, port) as process,
        httpx.Client(base_url=base, timeout=30) as client,
    ):
        chat_id = create_chat(client)
        upload(client, chat_id, big)
        with subscribe(f"ws://127.0.0.1:{port}/chat/{chat_id}") as ws:
            run_id = client.post(
                f"{API}/chat/workflows/{chat_id}/execute", json=seed_workflow(columns=["code"])
            ).json()["data"]["run_id"]
            assert json.loads(ws.recv(timeout=30))["type"] == "workflow_started"
            process.send_signal(signal.SIGTERM)
            events = []
            try:
                while True:
                    events.append(json.loads(ws.recv(timeout=30)))
            except ConnectionClosed as closed:
                assert closed.rcvd is not None and closed.rcvd.code == 1001
        # uvicorn re-raises the signal after its graceful shutdown.
        assert process.wait(30) in (0, -signal.SIGTERM)
        # The run finished (and its transcript entry was stored) before the socket closed.
        assert [e["type"] for e in events][-2:] == ["workflow_completed", "message_added"]

    with _server_process(data_dir, port), httpx.Client(base_url=base, timeout=30) as client:
        run = client.get(f"{API}/chat/workflows/{chat_id}/runs/{run_id}").json()["data"]
        assert run["status"] == "completed"
        assert client.get(run["outputs"][0]["download_url"]).status_code == 200


@pytest.mark.slow  # kill or restart
def test_a_step_over_the_time_limit_fails_with_timeout_and_frees_the_chat(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", step_timeout_s=0.3)
    big = tmp_path / "big.csv"
    pl.DataFrame({"code": [f"{i:07d}" for i in range(300_000)]}).write_csv(big)
    with run_server(settings) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        chat_id = create_chat(client)
        upload(client, chat_id, big)
        run = client.post(
            f"{API}/chat/workflows/{chat_id}/execute",
            params={"wait": "true"},
            json=seed_workflow(columns=["code"]),
        ).json()["data"]
        assert run["status"] == "failed"
        assert run["error"]["code"] == "timeout"
        assert run["error"]["step"] == 1
        assert "0.3 s step time limit" in run["error"]["message"]
        small = write_xlsx(tmp_path / "data.xlsx", POSTAL_ROWS)
        upload(client, chat_id, small)
        again = client.post(
            f"{API}/chat/workflows/{chat_id}/execute", params={"wait": "true"}, json=seed_workflow()
        ).json()["data"]
        assert again["status"] == "completed"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the timed-out thread stops at its next checkpoint
            on_disk = {p.name for p in (settings.files_dir / chat_id).iterdir()}
            if len(on_disk) == 3:
                break
            time.sleep(0.1)
        assert len(on_disk) == 3  # two uploads and one output; nothing from the timed-out step
