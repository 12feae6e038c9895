"""Secrets never reach a log line: API keys, ``?token=`` values and Authorization headers.

The redaction happens where every record is made (the log record factory), not in one
handler, so uvicorn's access and error logs, its trace-level ASGI dumps, third-party loggers
and any handler added later all get the redacted text. A record's arguments are redacted one
by one rather than merged into its message, because uvicorn's access formatter unpacks them.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"
# Each pattern is a fixed prefix and a run of characters that cannot overlap it: linear time.
_PATTERNS = (
    # ?token=KEY, &access_token=KEY, api_key=KEY in a query string or a dumped ASGI scope
    re.compile(r"(?i)((?<![\w-])(?:access_)?token=|(?<![\w-])api_?key=)[^&;,\s'\"#)]+"),
    # Authorization: Bearer KEY / Basic ..., in headers or in a dumped header list
    re.compile(r"(?i)(\b(?:bearer|basic)\s+)[^\s'\",;)]+"),
)

_lock = threading.Lock()
_secrets: tuple[str, ...] = ()
_installed = False


def redact(text: str) -> str:
    """``text`` with every known key and every token-like value replaced by ``***``."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    return text


def install_redaction(secrets: Iterable[str]) -> None:
    """Redact ``secrets`` (and token-like values) from every log record made from now on."""
    global _secrets, _installed
    with _lock:
        known = {*_secrets, *(s for s in secrets if s)}
        # Longest first, so a key that contains another is masked whole.
        _secrets = tuple(sorted(known, key=len, reverse=True))
        if not _installed:
            logging.setLogRecordFactory(_redacting(logging.getLogRecordFactory()))
            _installed = True


def _redacting(make: Any) -> Any:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record: logging.LogRecord = make(*args, **kwargs)
        _redact_record(record)
        return record

    return factory


def _redact_record(record: logging.LogRecord) -> None:
    # Arguments one by one first: formatters that unpack them (uvicorn's access log) still
    # can, and its path argument carries any ?token= whole.
    if isinstance(record.args, Mapping):
        record.args = {key: _redact_value(value) for key, value in record.args.items()}
    elif record.args:
        record.args = tuple(_redact_value(value) for value in record.args)
    try:
        message = record.getMessage()
    except Exception:  # a broken record stays broken, but without the secrets in its parts
        record.msg = _redact_value(record.msg)
    else:
        # A secret can span the template and an argument ("?token=%s"): then the record
        # becomes its redacted text.
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
    if record.exc_info and record.exc_info[1] is not None:
        # Formatters use exc_text when it is set: the traceback is formatted once, redacted.
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


def _redact_value(value: Any) -> Any:
    """Strings redacted; numbers kept for %d; anything else as its redacted text."""
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    text = str(value)
    redacted = redact(text)
    return value if redacted == text else redacted
