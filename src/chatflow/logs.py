"""Log output: plain text, or one JSON object a line carrying the request, chat and run ids.

The ids live in context variables: the request-id middleware (api/request_ids.py) sets the
request's, the chat dependency (api/deps.py) and the WebSocket handler set the chat's, and a
run binds its own (``bind``). asyncio copies them into every task started from there, so a
line logged anywhere below carries them, uvicorn's access log line included.

Secrets are masked where records are made (redaction.py, the record factory), before any
formatter, so JSON lines get the redacted text as the text ones do.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Literal

from chatflow.redaction import redact

REQUEST_ID: ContextVar[str | None] = ContextVar("chatflow_request_id", default=None)
CHAT_ID: ContextVar[str | None] = ContextVar("chatflow_chat_id", default=None)
RUN_ID: ContextVar[str | None] = ContextVar("chatflow_run_id", default=None)
_IDS = (("request_id", REQUEST_ID), ("chat_id", CHAT_ID), ("run_id", RUN_ID))

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextmanager
def bind(*, run_id: str | None = None, chat_id: str | None = None) -> Iterator[None]:
    """Within the block, log lines carry these ids (those given; the others stay as they were)."""
    tokens = [
        (var, var.set(value))
        for var, value in ((RUN_ID, run_id), (CHAT_ID, chat_id))
        if value is not None
    ]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the ids set, exc_info."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, var in _IDS:
            value = var.get()
            if value is not None:
                # A client chose the request id: it is masked like anything else it sends.
                line[name] = redact(value)
        if record.exc_info and record.exc_info[1] is not None:
            # redaction.py has already set exc_text, redacted, for records made since it was
            # installed; formatException is the fallback for any other.
            line["exc_info"] = record.exc_text or self.formatException(record.exc_info)
        if record.stack_info:
            line["stack_info"] = record.stack_info
        return json.dumps(line, ensure_ascii=False, default=str)


def format_from_env() -> Literal["text", "json"]:
    """The format a child process inherits in CHATFLOW_LOG_FORMAT (text unless it says json)."""
    return "json" if os.environ.get("CHATFLOW_LOG_FORMAT", "").strip().lower() == "json" else "text"


def setup_logging(level: int, log_format: Literal["text", "json"] = "text") -> None:
    """Send every log line (uvicorn's too: it is given no config of its own) to stderr."""
    handler = logging.StreamHandler()
    json_lines = log_format == "json"
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
