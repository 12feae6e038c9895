"""No log line carries a secret: keys in ?token=, in Authorization headers, in error messages."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from chatflow.redaction import redact
from tests.support import free_ports, make_settings, run_server, wait_until_serving

API = "/api/v1"
FILE_KEY = "filekey-5b1d0c9e8a7f6e5d4c3b"  # from CHATFLOW_API_KEYS_FILE
ENV_KEY = "envkey-0f1e2d3c4b5a69788796"  # from CHATFLOW_API_KEYS
# Keys no server knows: a typo or another deployment's key is a secret all the same.
STRANGER_QUERY = "stranger-query-77aa66bb55cc"
STRANGER_HEADER = "stranger-header-44dd33ee22ff"
SECRETS = (FILE_KEY, ENV_KEY, STRANGER_QUERY, STRANGER_HEADER)


@contextmanager
def _serve(tmp_path: Path, log: Path, *extra: str) -> Iterator[str]:
    """`chatflow serve` in its own process, everything it logs going to ``log``."""
    (port,) = free_ports(1)
    keys = tmp_path / "keys.txt"
    keys.write_text(f"# the file's comment\n{FILE_KEY}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATFLOW_")}
    env |= {
        "CHATFLOW_API_KEYS": ENV_KEY,
        "CHATFLOW_API_KEYS_FILE": str(keys),
        "CHATFLOW_PRESTART_WORKERS": "false",
    }
    command = [sys.executable, "-m", "chatflow", "serve", "--port", str(port), "--ws-port", "0"]
    command += ["--data-dir", str(tmp_path / "data"), *extra]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        wait_until_serving(port, process, 60, log)
        yield f"127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)  # a clean stop: every line is flushed
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def test_keys_never_reach_the_log(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with _serve(tmp_path, log, "--log-level", "trace") as host:
        base = f"http://{host}"
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {FILE_KEY}"}) as a:
            chat_id = a.post(f"{API}/chat/workflows").json()["data"]["chat_id"]
            assert a.get(f"{API}/chat/workflows/{chat_id}/events").status_code == 200
        assert httpx.get(f"{base}{API}/health", params={"token": ENV_KEY}).status_code == 200
        wrong = httpx.get(
            f"{base}{API}/operations",
            params={"token": STRANGER_QUERY},
            headers={"Authorization": f"Bearer {STRANGER_HEADER}"},
        )
        assert wrong.status_code == 401
        for url, kwargs, first in (
            (f"ws://{host}/chat/{chat_id}?token={FILE_KEY}", {}, None),
            (f"ws://{host}/chat/{chat_id}", {"Authorization": f"Bearer {ENV_KEY}"}, None),
            (f"ws://{host}/chat/{chat_id}", {}, {"type": "auth", "token": FILE_KEY}),
            (f"ws://{host}/chat/{chat_id}?token={STRANGER_QUERY}", {}, None),
        ):
            # The stranger is closed with 4401 at once: that is fine here.
            with (
                connect(url, additional_headers=kwargs, open_timeout=10) as ws,
                contextlib.suppress(ConnectionClosed),
            ):
                if first is not None:
                    ws.send(json.dumps(first))
                ws.send(json.dumps({"type": "ping"}))
                assert json.loads(ws.recv(timeout=5)) == {"type": "pong"}
    text = log.read_text(encoding="utf-8", errors="replace")
    # The lines that used to carry the secrets are there, with the secrets masked.
    assert f'"WebSocket /chat/{chat_id}?token=***"' in text, text[-3000:]
    assert f"GET {API}/health?token=***" in text, text[-3000:]
    assert "Bearer ***" in text  # uvicorn's trace level dumps every request's headers
    for secret in SECRETS:
        assert secret not in text, f"{secret} is in the log"


def test_a_key_file_that_cannot_be_read_is_named_not_quoted(tmp_path: Path) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_bytes(f"{FILE_KEY}\n".encode() + b"\xff\xfe" + ENV_KEY.encode() + b"\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATFLOW_")}
    env["CHATFLOW_API_KEYS_FILE"] = str(keys)
    done = subprocess.run(
        [sys.executable, "-m", "chatflow", "serve", "--port", "0", "--ws-port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert f"cannot use CHATFLOW_API_KEYS_FILE {keys}: line 2 is not UTF-8 text" in output
    assert "Traceback" not in output
    for secret in (FILE_KEY, ENV_KEY):
        assert secret not in output


def test_any_log_record_is_redacted_whoever_writes_it(tmp_path: Path) -> None:
    """Messages, arguments (text or objects) and tracebacks of any logger, any handler."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    other = logging.getLogger("some.library")
    other.addHandler(handler)
    other.setLevel(logging.INFO)
    settings = make_settings(tmp_path / "data", api_keys=f"{FILE_KEY},{ENV_KEY}")
    try:
        with run_server(settings):
            other.info(f"read {FILE_KEY} from the file")
            other.info("args: %s and %r", ENV_KEY, {"header": f"Bearer {ENV_KEY}"})
            try:
                raise ValueError(f"could not parse {FILE_KEY!r} as a number")
            except ValueError:
                other.exception("query failed on /tmp/x?token=%s", STRANGER_QUERY)
            other.info("%d rows, %.1f%%, status %s", 3, 50.0, 200)
    finally:
        other.removeHandler(handler)
    text = stream.getvalue()
    for secret in SECRETS:
        assert secret not in text, text
    assert "read *** from the file" in text
    assert "ValueError: could not parse '***' as a number" in text
    assert "?token=***" in text
    assert "3 rows, 50.0%, status 200" in text  # numbers keep their formatting


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("GET /x?token=abc&since=3 HTTP/1.1", "GET /x?token=***&since=3 HTTP/1.1"),
        ("GET /x?since=3&access_token=abc", "GET /x?since=3&access_token=***"),
        ("(b'authorization', b'Bearer abc.def')", "(b'authorization', b'Bearer ***')"),
        ("Authorization: Basic dXNlcjpwYXNz", "Authorization: Basic ***"),
        ("api_key=abc; other=1", "api_key=***; other=1"),
        ("a token=abc without a query", "a token=*** without a query"),
        ("mytoken=abc is someone else's field", "mytoken=abc is someone else's field"),
    ],
)
def test_token_like_values_are_masked(line: str, expected: str) -> None:
    assert redact(line) == expected


def test_redaction_is_linear_on_long_lines() -> None:
    start = time.perf_counter()
    for text in ("token=" * 200_000, "Bearer " * 200_000, "?" + "a" * 1_000_000):
        redact(text)
    assert time.perf_counter() - start < 2
