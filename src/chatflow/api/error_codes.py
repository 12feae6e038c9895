"""Every error code an answer can carry: its HTTP status and what it means.

Routes name theirs with ``deps.errors(...)``, and the OpenAPI document lists them per status,
each with an example. tests/api/test_openapi_document.py checks that every code the source
raises is here, and the schemathesis run that every error it sees is one its route lists.
"""

from __future__ import annotations

CODES: dict[str, tuple[int, str]] = {
    # 400
    "invalid_filename": (400, "the file name is not one a file may have"),
    "no_file": (400, "the upload has no part named 'file'"),
    "malformed_multipart": (400, "the multipart body cannot be parsed"),
    "too_many_parts": (400, "the upload has more parts than the server takes"),
    "field_too_large": (400, "a form field of the upload is too large"),
    "invalid_cursor": (400, "the cursor is not one this server handed out"),
    "invalid_idempotency_key": (400, "the Idempotency-Key header is empty or too long"),
    # 401
    "unauthorized": (401, "API keys are configured and none, or a wrong one, was sent"),
    # 404
    "chat_not_found": (404, "no such chat (or another key's)"),
    "file_not_found": (404, "no such file (or version) in the chat"),
    "run_not_found": (404, "no such run in the chat"),
    # Also 422 on execute, where it is the body's 'workflow' that names nothing: ``AT_422``.
    "workflow_not_found": (404, "no saved workflow of that name"),
    # 408
    "upload_stalled": (408, "the upload body stopped arriving (CHATFLOW_UPLOAD_IDLE_TIMEOUT_S)"),
    # 409
    "run_finished": (409, "the run has already ended; details.status says how"),
    "workflow_exists": (409, "a saved workflow has that name; save with replace=true"),
    "dry_run_stopped": (409, "the chat was deleted or the server is shutting down"),
    "idempotency_in_progress": (409, "a request with this Idempotency-Key is still at work"),
    # 413
    "file_too_large": (413, "an uploaded file is over CHATFLOW_MAX_UPLOAD_MB"),
    "body_too_large": (413, "the request body is over CHATFLOW_MAX_JSON_KB"),
    # 415
    "expected_multipart": (415, "an upload must be multipart/form-data"),
    "unsupported_file_type": (415, "the file name's extension is not a spreadsheet's"),
    # 422
    "validation_error": (422, "a parameter or the body does not match its schema"),
    "malformed_json": (422, "the body is not valid JSON"),
    "empty_workflow": (422, "the workflow has no steps"),
    "too_many_steps": (422, "the workflow has more steps than CHATFLOW_MAX_STEPS"),
    "unknown_operation": (422, "a step names an operation that does not exist"),
    "invalid_arguments": (422, "a step's arguments do not match its operation's schema"),
    "input_not_found": (422, "the input file is not in the chat (or the chat has none)"),
    "column_not_found": (422, "the first step names a column its input does not have"),
    "invalid_workflow_name": (422, "the workflow name does not match the pattern"),
    "idempotency_key_reused": (422, "this Idempotency-Key came with another request"),
    "invalid_delimiter": (422, "the delimiter field is not one of the accepted ones"),
    # 422: an upload's inspection refused the file (spreadsheets/inspection.py)
    "not_a_spreadsheet": (422, "the content is not a spreadsheet"),
    "invalid_package": (422, "the workbook's zip package is broken"),
    "empty_file": (422, "the file has no rows"),
    "unreadable_file": (422, "the file is damaged"),
    "password_protected": (422, "the workbook is encrypted"),
    "zip_bomb": (422, "the workbook inflates past CHATFLOW_MAX_UNCOMPRESSED_MB"),
    "too_many_cells": (422, "the file holds more cells than the limits allow"),
    "xml_dtd_forbidden": (422, "the workbook's XML declares a DTD"),
    "macros_not_supported": (422, "the workbook holds macros"),
    "malformed_csv": (422, "the csv cannot be parsed"),
    "parser_crashed": (422, "the reader crashed on the file"),
    "inspection_timeout": (422, "the inspection ran past CHATFLOW_INSPECT_TIMEOUT_S"),
    "file_too_complex": (422, "the inspection needed more than CHATFLOW_INSPECT_MEMORY_MB"),
    "inspection_failed": (422, "the inspection gave no verdict"),
    "unsupported_kind": (422, "the file's kind cannot be read"),
    # 503
    "shutting_down": (503, "the server is shutting down; retry (Retry-After)"),
    "database_busy": (503, "the database is busy; retry (Retry-After)"),
    "database_unavailable": (503, "the database cannot be reached; retry (Retry-After)"),
    "not_ready": (503, "a dependency is not ready (Retry-After)"),
    # 507
    "disk_full": (507, "the server's disk is full; nothing was kept"),
}

# What any route can answer: a body past the JSON limit, a parameter off its schema, and the
# database being busy or away.
EVERY_ROUTE = ("body_too_large", "validation_error", "database_busy", "database_unavailable")
# What a route with a JSON body can answer besides.
JSON_BODY = ("malformed_json", "disk_full")
# What the steps of a request can be refused with (runs/validation.py).
STEPS = ("empty_workflow", "too_many_steps", "unknown_operation", "invalid_arguments")
# What an upload's inspection can refuse a file with (spreadsheets/inspection.py).
INSPECTION = (
    "not_a_spreadsheet", "invalid_package", "empty_file", "unreadable_file",
    "password_protected", "zip_bomb", "too_many_cells", "xml_dtd_forbidden",
    "macros_not_supported", "malformed_csv", "parser_crashed", "inspection_timeout",
    "file_too_complex", "inspection_failed", "unsupported_kind",
)  # fmt: skip
# A code answered with another status than its usual one: (code, status).
AT_422 = ("workflow_not_found", 422)
