"""Errors the service raises on purpose: each carries an HTTP status and a stable code."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """Base: rendered as ``{"error": {"code", "message", "details"}}`` with ``status``."""

    status = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details
        self.headers = headers


class Unauthorized(ApiError):
    status = 401
    code = "unauthorized"


class NotFound(ApiError):
    status = 404
    code = "not_found"


class Invalid(ApiError):
    status = 422
    code = "validation_error"


class BadRequest(ApiError):
    status = 400
    code = "bad_request"


class Conflict(ApiError):
    status = 409
    code = "conflict"


class RequestTimeout(ApiError):
    status = 408
    code = "request_timeout"


class PayloadTooLarge(ApiError):
    status = 413
    code = "file_too_large"


class BodyTooLarge(PayloadTooLarge):
    """A JSON (non-upload) request body over CHATFLOW_MAX_JSON_KB."""

    code = "body_too_large"


class UnsupportedMediaType(ApiError):
    status = 415
    code = "unsupported_media_type"


class Unavailable(ApiError):
    status = 503
    code = "unavailable"


class InsufficientStorage(ApiError):
    status = 507
    code = "insufficient_storage"
