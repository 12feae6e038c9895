"""Issue 16's observability: /metrics, JSON log lines with request and chat ids, live/ready."""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from chatflow.logs import JsonFormatter, bind
from tests.conftest import database_settings
from tests.redis_service import RedisServer
from tests.support import (
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

pytestmark = pytest.mark.both_databases

API = "/api/v1"
KEY = "obs-key-3e1f9a7c5b2d4e6f"
CSV = b"name,postal_code,city\nAna,01234,Lisbon\nBen,98765,Porto\n"
FAMILIES = {
    "chatflow_runs",  # the parser names a counter's family without _total
    "chatflow_runs_stored",
    "chatflow_step_duration_seconds",
    "chatflow_queue_depth",
    "chatflow_queue_wait_seconds",
    "chatflow_websocket_subscribers",
    "chatflow_events_published",
    "chatflow_events_delivered",
    "chatflow_upload_inspection_seconds",
    "chatflow_db_pool_connections",
    "chatflow_redis_reconnects",
}


class Served:
    """`chatflow serve` in its own process, JSON log lines going to ``log``."""

    def __init__(self, port: int, log: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}"
        self.log = log
        self.http = httpx.Client(
            base_url=self.url, timeout=60, headers={"Authorization": f"Bearer {KEY}"}
        )

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of /metrics by (name, sorted labels)."""
        response = self.http.get("/metrics")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
        }

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, database_kind: str
) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("observed")
    (port,) = free_ports(1)
    env = {
        "CHATFLOW_LOG_FORMAT": "json",
        "CHATFLOW_API_KEYS": KEY,
        "CHATFLOW_PRESTART_WORKERS": "false",
        "CHATFLOW_WORKER_PROCESSES": "1",
        "CHATFLOW_INSPECT_PROCESSES": "1",
    }
    for name, value in database_settings(request, database_kind).items():
        env[f"CHATFLOW_{name.upper()}"] = str(value)  # PostgreSQL and Redis, or nothing
    log = home / "server.log"
    with chatflow_process(home / "data", log, port=port, env=env):
        served = Served(port, log)
        with served.http:
            yield served


def _value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def _until(check: Any, timeout_s: float = 15.0) -> Any:
    """``check()`` once it returns something truthy; fails after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not (result := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
    return result


def test_live_and_ready_answer_without_a_key(served: Served) -> None:
    for probe in ("live", "ready"):
        response = httpx.get(f"{served.url}{API}/health/{probe}")
        assert response.status_code == 200, response.text
        assert response.json() == {"data": {"status": "ok"}}


def test_metrics_need_a_key_and_name_no_chat(served: Served) -> None:
    refused = httpx.get(f"{served.url}/metrics")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"
    chat_id = create_chat(served.http)
    samples = served.metrics()
    text = served.http.get("/metrics").text
    assert {family.name for family in text_string_to_metric_families(text)} >= FAMILIES
    assert ("chatflow_runs_total", (("status", "completed"),)) in samples
    labels = {value for _, pairs in samples for _, value in pairs}
    assert chat_id not in labels
    in_use = _value(samples, "chatflow_db_pool_connections", state="in_use")
    idle = _value(samples, "chatflow_db_pool_connections", state="idle")
    assert in_use >= 0 and idle >= 0 and in_use + idle >= 1


def test_counters_move_with_an_upload_and_a_subscriber(served: Served, tmp_path: Path) -> None:
    chat_id = create_chat(served.http)
    with subscribe(f"{served.ws_url}/chat/{chat_id}?token={KEY}") as ws:
        _until(lambda: served.metrics()[("chatflow_websocket_subscribers", ())] == 1)
        before = served.metrics()
        last = served.http.get(f"{API}/chat/workflows/{chat_id}").json()["data"]["last_seq"]
        source = tmp_path / "people.csv"
        source.write_bytes(CSV)
        assert upload(served.http, chat_id, source).status_code == 201
        received = receive_until(ws, {"message_added"})
        stored = served.http.get(
            f"{API}/chat/workflows/{chat_id}/events", params={"since": last}
        ).json()["data"]
        assert [e["seq"] for e in received] == [e["seq"] for e in stored]

        def delivered() -> dict[Any, float] | None:
            now = served.metrics()
            moved = (
                now[("chatflow_events_delivered_total", ())]
                - before[("chatflow_events_delivered_total", ())]
            )
            return now if moved == len(received) else None

        after = _until(delivered)
    published = ("chatflow_events_published_total", ())
    assert after[published] - before[published] == len(stored)
    inspected = ("chatflow_upload_inspection_seconds_count", ())
    assert after[inspected] - before[inspected] == 1


def test_runs_in_the_database_are_counted_by_status(served: Served, tmp_path: Path) -> None:
    chat_id = create_chat(served.http)
    upload(served.http, chat_id, write_xlsx(tmp_path / "data.xlsx", [["postal_code"], ["01"]]))
    before = served.metrics()
    run = served.http.post(
        f"{API}/chat/workflows/{chat_id}/execute", params={"wait": "true"}, json=seed_workflow()
    ).json()["data"]
    assert run["status"] == "completed", run
    after = served.metrics()

    def moved(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    # This process ran it: one ending, one start waited for, one timing per step.
    assert moved("chatflow_runs_total", status="completed") == 1
    assert moved("chatflow_queue_wait_seconds_count") == 1
    operations = [step["operation"] for step in seed_workflow()["steps"]]
    for operation in set(operations):
        counted = moved("chatflow_step_duration_seconds_count", operation=operation)
        assert counted == operations.count(operation)
    # The log lines of the run carry its ids.
    assert any(line.get("run_id") == run["run_id"] for line in served.lines())
    # Counted from the database at most every few seconds: the next fresh count has it.
    samples = _until(
        lambda: (
            (s := served.metrics())
            and _value(s, "chatflow_runs_stored", status="completed") >= 1
            and s
        )
    )
    assert _value(samples, "chatflow_runs_stored", status="queued") == 0
    assert samples[("chatflow_queue_depth", ())] == 0


def test_json_lines_carry_the_request_and_chat_ids(served: Served) -> None:
    chat_id = create_chat(served.http)
    sent = served.http.get(
        f"{API}/chat/workflows/{chat_id}/events", headers={"X-Request-ID": "obs-req-7Q"}
    )
    assert sent.status_code == 200
    assert sent.headers["x-request-id"] == "obs-req-7Q"
    made = served.http.get(f"{API}/health/live", headers={"X-Request-ID": "x" * 129})
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])

    def access_line(request_id: str) -> dict[str, Any] | None:
        for line in served.lines():  # every line must parse as JSON
            if line.get("request_id") == request_id and line["logger"] == "uvicorn.access":
                return line
        return None

    line = _until(lambda: access_line("obs-req-7Q"))
    assert line["chat_id"] == chat_id
    assert line["level"] == "INFO"
    assert f"/chat/workflows/{chat_id}/events" in line["message"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", line["time"])
    untied = _until(lambda: access_line(made.headers["x-request-id"]))
    assert "chat_id" not in untied and "run_id" not in untied


def test_json_lines_are_redacted(served: Served) -> None:
    response = httpx.get(
        f"{served.url}{API}/health",
        params={"token": KEY},
        headers={"X-Request-ID": f"token={KEY}"},
    )
    assert response.status_code == 200
    _until(lambda: any("/api/v1/health?token=***" in x["message"] for x in served.lines()))
    assert KEY not in served.log.read_text()
    assert any(x.get("request_id") == "token=***" for x in served.lines())


@pytest.fixture
def unready(tmp_path: Path) -> Iterator[LiveServer]:
    """A server on SQLite whose Redis is a closed loopback port, /metrics open without a key."""
    (closed,) = free_ports(1)
    settings = make_settings(
        tmp_path / "data",
        redis_url=f"redis://127.0.0.1:{closed}/0",
        api_keys=KEY,
        metrics_public=True,
    )
    with run_server(settings) as live:
        yield live


def test_ready_is_503_while_redis_is_unreachable_or_the_schema_behind(
    unready: LiveServer,
) -> None:
    assert httpx.get(f"{unready.url}{API}/health/live").status_code == 200
    response = httpx.get(f"{unready.url}{API}/health/ready", timeout=30)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    error = response.json()["error"]
    assert error["code"] == "not_ready"
    assert error["details"] == {"database": "ok", "redis": "unreachable", "migrations": "ok"}
    database = unready.settings.resolved_data_dir / "chatflow.db"
    with sqlite3.connect(database) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0001'")
    details = httpx.get(f"{unready.url}{API}/health/ready", timeout=30).json()["error"]["details"]
    assert details["migrations"] == "not_at_head"
    # CHATFLOW_METRICS_PUBLIC: a scraper needs no key; the failed connection was counted.
    samples = httpx.get(f"{unready.url}/metrics").text
    reconnects = {
        s.name: s.value
        for f in text_string_to_metric_families(samples)
        for s in f.samples
        if s.name == "chatflow_redis_reconnects_total"
    }
    assert reconnects["chatflow_redis_reconnects_total"] >= 1


def test_ready_with_redis_reachable(tmp_path: Path, redis_server: RedisServer) -> None:
    settings = make_settings(
        tmp_path / "data", redis_url=redis_server.url(), redis_prefix=redis_server.prefix
    )
    with run_server(settings) as live:
        response = httpx.get(f"{live.url}{API}/health/ready", timeout=30)
    assert response.status_code == 200, response.text


def test_bind_puts_a_runs_ids_on_its_lines_and_exc_info_is_a_string() -> None:
    formatter = JsonFormatter()
    logger = logging.getLogger("chatflow.test_observability")

    def line(**kwargs: Any) -> dict[str, Any]:
        record = logger.makeRecord(logger.name, logging.ERROR, "f.py", 1, "x %s", ("y",), **kwargs)
        return dict(json.loads(formatter.format(record)))

    with bind(run_id="run-1", chat_id="chat-1"):
        with bind(run_id="run-2"):
            inner = line(exc_info=None)
        try:
            raise ValueError("boom")
        except ValueError:
            failed = line(exc_info=sys.exc_info())
    after = line(exc_info=None)
    assert (inner["run_id"], inner["chat_id"], inner["message"]) == ("run-2", "chat-1", "x y")
    assert failed["run_id"] == "run-1" and "ValueError: boom" in failed["exc_info"]
    assert "run_id" not in after and "chat_id" not in after


def test_a_queued_run_logs_under_its_own_ids_not_the_request_that_started_the_queue(
    served: Served, tmp_path: Path
) -> None:
    chat_id = create_chat(served.http)
    upload(served.http, chat_id, write_xlsx(tmp_path / "data.xlsx", [["postal_code"], ["01"]]))
    run_ids = []
    for request_id in ("queue-first-1", "queue-second-2"):  # the second waits behind the first
        response = served.http.post(
            f"{API}/chat/workflows/{chat_id}/execute",
            json=seed_workflow(),
            headers={"X-Request-ID": request_id},
        )
        assert response.status_code == 202, response.text
        run_ids.append(response.json()["data"]["run_id"])

    def ended_lines() -> list[dict[str, Any]]:
        lines = [line for line in served.lines() if line.get("run_id") in run_ids]
        return lines if sum("ended" in line["message"] for line in lines) == 2 else []

    lines = _until(ended_lines, 60)
    assert {line["chat_id"] for line in lines} == {chat_id}
    # Runs execute after their requests have been answered: no request id is theirs.
    assert {line.get("request_id") for line in lines} == {None}
