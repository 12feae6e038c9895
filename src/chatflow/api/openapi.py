"""The OpenAPI document: FastAPI's, completed with what only the running service knows.

FastAPI builds the document from the routes' models. Three things it cannot see are added
here, once per app: the steps, typed from the operation registry (a new operation appears with
no edit to the API layer); the limits that are settings (steps per workflow, upload size); and
which routes answer without a key. Requests are still validated by the routes' own models and
by the run's validation (runs/validation.py), whose error codes and details clients rely on;
the document only describes the same models (tests/api/test_openapi_document.py proves that
every operation's example passes both).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, create_model

from chatflow.api import observability
from chatflow.api.routes import walk
from chatflow.operations.registry import Operation, Registry
from chatflow.settings import Settings

SCHEMAS = "#/components/schemas/"
BEARER = "HTTPBearer"  # FastAPI's name for the scheme of api/deps.py's ``bearer``
KEY_RULE = (
    "**API key:** `Authorization: Bearer KEY` when the server has API keys "
    "(`CHATFLOW_API_KEYS`, `CHATFLOW_API_KEYS_FILE`); a server without keys answers without one."
)
KEYLESS_RULE = "**API key:** not needed, even when the server has API keys."


def install(app: FastAPI, *, registry: Registry, settings: Settings) -> None:
    """Serve ``document(...)`` as the app's OpenAPI document, built on first request."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(app, registry=registry, settings=settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def document(app: FastAPI, *, registry: Registry, settings: Settings) -> dict[str, Any]:
    """The app's OpenAPI document with typed steps, the settings' limits and key rules."""
    doc = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    schemas: dict[str, Any] = doc["components"]["schemas"]
    _type_steps(schemas, registry)
    for operation in _operations(doc):
        _step_limits(operation, schemas, settings)
        _step_examples(operation, schemas, registry)
        _upload_limits(operation, settings)
    _security(doc, _metrics_keyless(app, settings))
    return doc


def step_union(registry: Registry) -> Any:
    """A step as the registry defines it: one variant per operation, told apart by name."""
    variants = tuple(_variant(op) for op in registry.all())
    return Annotated[Union[variants], Field(discriminator="operation")]  # noqa: UP007


def _variant(op: Operation[Any]) -> type[BaseModel]:
    """``{operation: <name>, arguments: <its argument model>}``, described by the operation."""
    needs_arguments = any(f.is_required() for f in op.args_model.model_fields.values())
    arguments: Any = ... if needs_arguments else Field(default_factory=dict)
    words = re.split(r"[^A-Za-z0-9]+", op.name)
    name: Any = Literal[op.name]  # a literal type made at run time, from the registry
    return create_model(
        "Step" + "".join(word.capitalize() for word in words),
        __config__=ConfigDict(
            extra="forbid",
            title=op.name,
            json_schema_extra={
                "description": op.description,
                "examples": [{"operation": op.name, "arguments": op.example}],
            },
        ),
        operation=(name, ...),
        arguments=(op.args_model, arguments),
    )


def _type_steps(schemas: dict[str, Any], registry: Registry) -> None:
    """Replace the free ``StepIn`` with the registry's union, its models among the others."""
    union = TypeAdapter(step_union(registry)).json_schema(ref_template=SCHEMAS + "{model}")
    for name, schema in union.pop("$defs", {}).items():
        if name in schemas and schemas[name] != schema:
            raise RuntimeError(f"two schemas named {name!r} in the OpenAPI document")
        schemas[name] = schema
    schemas["StepIn"] = {
        **union,
        "title": "Step",
        "description": "one step: an operation's name and its arguments (GET /operations "
        "lists the same operations)",
    }


def _operations(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [op for item in doc["paths"].values() for op in item.values() if isinstance(op, dict)]


def _body_ref(operation: dict[str, Any], media_type: str = "application/json") -> str | None:
    content = operation.get("requestBody", {}).get("content", {}).get(media_type)
    ref = (content or {}).get("schema", {}).get("$ref")
    return ref.removeprefix(SCHEMAS) if isinstance(ref, str) else None


def _step_limits(operation: dict[str, Any], schemas: dict[str, Any], settings: Settings) -> None:
    """Steps of a request body: 1 to CHATFLOW_MAX_STEPS (else 422 empty_workflow or
    too_many_steps)."""
    name = _body_ref(operation)
    steps = schemas.get(name or "", {}).get("properties", {}).get("steps", {})
    for choice in steps.get("anyOf", [steps]):
        if choice.get("type") == "array" and "maxItems" not in choice:
            choice.update(minItems=1, maxItems=settings.max_steps)
            steps["description"] = (
                f"{steps.get('description', 'steps')}: 1 to {settings.max_steps} "
                "(CHATFLOW_MAX_STEPS), each an operation with its arguments"
            )


def _step_examples(operation: dict[str, Any], schemas: dict[str, Any], registry: Registry) -> None:
    """A selectable example per operation for the body of ``execute``; the body model's own
    example (the seed's workflow) stays the one shown first."""
    if _body_ref(operation) != "ExecuteIn":
        return
    shown = schemas["ExecuteIn"].get("examples", [{}])[0]
    first = {step["operation"] for step in shown.get("steps", [])}
    media = operation["requestBody"]["content"]["application/json"]
    media["examples"] = {
        op.name: {
            "summary": op.name,
            "description": op.summary,
            "value": {"steps": [{"operation": op.name, "arguments": op.example}]},
        }
        for op in sorted(registry.all(), key=lambda op: op.name not in first)
    }


def _upload_limits(operation: dict[str, Any], settings: Settings) -> None:
    """The per-file size limit of a multipart upload, a setting."""
    media = operation.get("requestBody", {}).get("content", {}).get("multipart/form-data")
    if media is None:
        return
    file_part = media["schema"]["properties"]["file"]
    file_part["description"] += (
        f"; each at most {settings.max_upload_mb} MB (CHATFLOW_MAX_UPLOAD_MB), else 413 "
        "file_too_large"
    )


def _metrics_keyless(app: FastAPI, settings: Settings) -> set[tuple[str, str]]:
    """(path, method) of /metrics when CHATFLOW_METRICS_PUBLIC opens it to callers without keys."""
    if not settings.metrics_public:
        return set()
    return {
        (info.path, method.lower())
        for info in walk(app.routes)
        if info.endpoint is observability.metrics
        for method in info.methods
    }


def _security(doc: dict[str, Any], opened: set[tuple[str, str]]) -> None:
    """Say on every operation whether it needs a key. A route that answers without one lists
    the empty requirement (``openapi_extra={"security": [{}]}`` on the route), as do those in
    ``opened``."""
    scheme = doc["components"]["securitySchemes"][BEARER]
    scheme["description"] = (
        "an API key from CHATFLOW_API_KEYS; needed only when the server has keys configured"
    )
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            security = operation.get("security")
            if security is None:
                continue
            keyless = {} in security or (path, method) in opened
            if keyless:
                operation["security"] = [{}, {BEARER: []}]
            rule = KEYLESS_RULE if keyless else KEY_RULE
            operation["description"] = f"{operation.get('description', '').rstrip()}\n\n{rule}"
