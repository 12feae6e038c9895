"""Every failure becomes ``{"error": {"code", "message", "details"}}`` with a 4xx/5xx status."""

from __future__ import annotations

import logging
from typing import Any

from asyncpg.exceptions import CannotConnectNowError
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException

from chatflow.api.routes import walk
from chatflow.errors import ApiError

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


# An error answer names what was wrong; it does not echo a megabyte of it back.
ECHO_CHARS = 300
MESSAGE_CHARS = 600
ECHO_ITEMS = 50
ECHO_DEPTH = 8


def error_response(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {
        "error": {
            "code": code,
            "message": clip_text(message, MESSAGE_CHARS),
            "details": clip(jsonable_encoder(details)),
        }
    }
    return JSONResponse(body, status_code=status, headers=headers)


def clip_text(text: str, limit: int = ECHO_CHARS) -> str:
    """``text``, or its first ``limit`` characters and how many there were."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


def clip(value: Any, depth: int = 0) -> Any:
    """A JSON value with long strings, long lists, big objects and deep nesting cut short."""
    if isinstance(value, str):
        return clip_text(value)
    if depth >= ECHO_DEPTH and isinstance(value, list | dict):
        return "..."
    if isinstance(value, list):
        items = [clip(item, depth + 1) for item in value[:ECHO_ITEMS]]
        if len(value) > ECHO_ITEMS:
            items.append(f"... ({len(value) - ECHO_ITEMS} more)")
        return items
    if isinstance(value, dict):
        kept = list(value.items())[:ECHO_ITEMS]
        return {clip_text(str(key)): clip(item, depth + 1) for key, item in kept}
    return value


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
        for err in exc.errors()
    ]
    first = problems[0] if problems else {"loc": [], "msg": "invalid request"}
    loc = list(first["loc"])
    if loc[:1] == ["body"]:
        loc = loc[1:]
    where = _describe(loc)
    code = "malformed_json" if first.get("type") == "json_invalid" else "validation_error"
    message = str(first["msg"])
    return error_response(422, code, f"{where}: {message}" if where else message, problems)


def _describe(loc: list[Any]) -> str:
    """'steps[0].arguments' from ['steps', 0, 'arguments']."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
        # FastAPI's answer to a body that is not even text: the same as any broken JSON.
        return error_response(422, "malformed_json", "the request body is not valid JSON")
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    headers = dict(exc.headers) if exc.headers else None
    if exc.status_code == 405:
        headers = {**(headers or {}), "Allow": allowed_methods(request)}
    return error_response(exc.status_code, code, str(exc.detail), headers=headers)


def allowed_methods(request: Request) -> str:
    """Every method of every route of the request's path: Starlette's 405 names only those of
    the first route that matched it (``GET`` of a path whose ``DELETE`` is another route)."""
    path = request.scope["path"]
    methods = {
        m for info in walk(request.app.routes) if info.regex.match(path) for m in info.methods
    }
    return ", ".join(sorted(methods))


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable for %s %s: %s", request.method, request.url.path, exc)
    if "disk is full" in str(exc):
        return error_response(507, "disk_full", "the server's disk is full; nothing was changed")
    # 'database is locked' after the busy timeout: the client should retry, not see a 500.
    return error_response(
        503,
        "database_busy",
        "the database is busy; retry shortly",
        headers={"Retry-After": "2"},
    )


async def _database_unreachable(request: Request, exc: Exception) -> JSONResponse:
    # A new connection to PostgreSQL was refused (down, restarting) or a live one was cut: the
    # service recovers by itself once the server is back, so the client should retry.
    if isinstance(exc, DBAPIError) and not exc.connection_invalidated:
        return await _unexpected(request, exc)  # a constraint, a bug: not the network's doing
    log.warning("database unreachable for %s %s: %r", request.method, request.url.path, exc)
    return error_response(
        503,
        "database_unavailable",
        "the database cannot be reached; retry shortly",
        headers={"Retry-After": "2"},
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "internal server error; it has been logged")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(OperationalError, _database_error)
    # Every pooled PostgreSQL connection stayed busy for pool_timeout: the same advice.
    app.add_exception_handler(PoolTimeout, _database_error)
    # asyncpg's connect raises these itself, unwrapped by SQLAlchemy.
    app.add_exception_handler(ConnectionRefusedError, _database_unreachable)
    app.add_exception_handler(CannotConnectNowError, _database_unreachable)
    app.add_exception_handler(DBAPIError, _database_unreachable)
    app.add_exception_handler(Exception, _unexpected)
