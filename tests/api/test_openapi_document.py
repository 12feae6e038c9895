"""What the OpenAPI document promises, checked against the registry, the source and the server.

The fuzzing (test_fuzz_openapi.py) checks the document and the server agree on generated
requests; these tests pin what it cannot see: every operation typed from the registry and its
example accepted by both the document and the server, a new operation documented with no edit
to the API layer, the error codes, the parameters' rules, the key rules, and 405's ``Allow``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import Field

from chatflow import filenames
from chatflow.api import openapi
from chatflow.api.error_codes import CODES
from chatflow.app import create_app
from chatflow.operations import load_all
from chatflow.operations.registry import OperationArgs, Registry, StepContext, StepOutput
from tests.support import make_settings

API = "/api/v1"
EXECUTE = "/api/v1/chat/workflows/{chat_id}/execute"
SRC = Path(__file__).resolve().parents[2] / "src" / "chatflow"
DOCUMENT = create_app(make_settings(Path("unused-data-dir"))).openapi()


def _validator(document: dict[str, Any], name: str) -> jsonschema_rs.Draft202012Validator:
    """A validator for the component ``name``, its references resolved in ``document``."""
    schema = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    return jsonschema_rs.Draft202012Validator(schema)


def test_every_operation_is_a_step_variant_with_its_schema_description_and_example() -> None:
    registry = load_all()
    step = DOCUMENT["components"]["schemas"]["StepIn"]
    mapping = step["discriminator"]["mapping"]
    assert step["discriminator"]["propertyName"] == "operation"
    assert sorted(mapping) == sorted(registry.names())
    assert sorted(ref["$ref"] for ref in step["oneOf"]) == sorted(mapping.values())
    for op in registry.all():
        variant = DOCUMENT["components"]["schemas"][mapping[op.name].rsplit("/", 1)[1]]
        assert variant["properties"]["operation"] == {
            "const": op.name,
            "title": "Operation",
            "type": "string",
        }
        args_name = variant["properties"]["arguments"]["$ref"].rsplit("/", 1)[1]
        assert args_name == op.args_model.__name__
        assert variant["description"] == op.description
        assert variant["examples"] == [{"operation": op.name, "arguments": op.example}]
        assert variant["additionalProperties"] is False


def test_execute_offers_an_example_per_operation() -> None:
    registry = load_all()
    media = DOCUMENT["paths"][EXECUTE]["post"]["requestBody"]["content"]["application/json"]
    assert sorted(media["examples"]) == sorted(registry.names())
    # The seed's workflow, the body model's own example, is the one the docs show first.
    assert (
        next(iter(media["examples"].values()))["value"]
        == (DOCUMENT["components"]["schemas"]["ExecuteIn"]["examples"][0])
    )
    body = _validator(DOCUMENT, "ExecuteIn")
    for op in registry.all():
        example = media["examples"][op.name]
        assert example["value"] == {"steps": [{"operation": op.name, "arguments": op.example}]}
        assert example["description"] == op.summary
        body.validate(example["value"])


def test_every_example_passes_the_document_and_the_server(client: httpx.Client) -> None:
    """The document's step schema and the run's validation agree on every operation's example,
    and both refuse the same wrong arguments."""
    registry = load_all()
    step = _validator(DOCUMENT, "StepIn")
    steps = [{"operation": op.name, "arguments": op.example} for op in registry.all()]
    for one in steps:
        step.validate(one)
    chat_id = client.post(f"{API}/chat/workflows").json()["data"]["chat_id"]
    # Saving validates every step as a run does (runs/validation.py), without an input file.
    saved = client.post(
        f"{API}/chat/workflows/{chat_id}/workflows", json={"name": "every example", "steps": steps}
    )
    assert saved.status_code == 201, saved.text
    assert [s["operation"] for s in saved.json()["data"]["steps"]] == registry.names()
    wrong = {"operation": "excel/extract-columns-to-file", "arguments": {"columns": "postal_code"}}
    assert not step.is_valid(wrong)
    refused = client.post(
        f"{API}/chat/workflows/{chat_id}/workflows", json={"name": "wrong", "steps": [wrong]}
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "invalid_arguments"
    assert refused.json()["error"]["details"]["errors"][0]["loc"] == ["columns"]


class _ShoutArgs(OperationArgs):
    column: str = Field(description="the column to shout")


def test_a_new_operation_is_documented_without_touching_the_api_layer() -> None:
    registry = Registry()

    @registry.register(
        "excel/shout", description="Upper-case a column.", args=_ShoutArgs, example={"column": "a"}
    )
    def shout(ctx: StepContext, args: _ShoutArgs) -> StepOutput:
        return StepOutput()

    app = create_app(make_settings(Path("unused-data-dir")))
    document = openapi.document(app, registry=registry, settings=make_settings(Path("x")))
    mapping = document["components"]["schemas"]["StepIn"]["discriminator"]["mapping"]
    assert mapping == {"excel/shout": "#/components/schemas/StepExcelShout"}
    assert document["components"]["schemas"]["_ShoutArgs"]["required"] == ["column"]
    media = document["paths"][EXECUTE]["post"]["requestBody"]["content"]["application/json"]
    assert list(media["examples"]) == ["excel/shout"]


def test_steps_are_bounded_by_the_setting() -> None:
    document = create_app(make_settings(Path("x"), max_steps=7)).openapi()
    for body in ("ExecuteIn", "WorkflowSave"):
        steps = document["components"]["schemas"][body]["properties"]["steps"]["anyOf"][0]
        assert (steps["minItems"], steps["maxItems"]) == (1, 7)


def test_the_upload_body_comes_from_the_kinds_table() -> None:
    upload = DOCUMENT["paths"]["/api/v1/chat/workflows/{chat_id}/upload"]["post"]
    media = upload["requestBody"]["content"]["multipart/form-data"]
    assert upload["requestBody"]["required"] is True
    assert media["schema"]["required"] == ["file"]
    part = media["schema"]["properties"]["file"]
    assert (part["type"], part["minItems"], part["items"]) == (
        "array",
        1,
        {"type": "string", "format": "binary"},
    )
    for extension in filenames.KINDS:
        assert extension in part["description"]
    assert "100 MB (CHATFLOW_MAX_UPLOAD_MB)" in part["description"]
    accepted = media["encoding"]["file"]["contentType"].split(", ")
    assert set(accepted) == {filenames.MEDIA_TYPES[kind] for kind in filenames.KINDS.values()}
    assert media["schema"]["properties"]["delimiter"]["enum"] == [
        ",",
        ";",
        "\t",
        "|",
        "tab",
        "\\t",
        "",
    ]


def _parameter(path: str, method: str, name: str) -> dict[str, Any]:
    found = [p for p in DOCUMENT["paths"][path][method]["parameters"] if p["name"] == name]
    assert len(found) == 1
    return dict(found[0]["schema"])


def test_parameters_carry_the_rules_the_server_checks() -> None:
    file_path = "/api/v1/chat/workflows/{chat_id}/files/{filename}"
    assert _parameter(file_path, "get", "chat_id")["format"] == "uuid"
    assert (
        _parameter("/api/v1/chat/workflows/{chat_id}/runs/{run_id}", "get", "run_id")["format"]
        == "uuid"
    )
    name = _parameter(file_path, "get", "filename")
    assert (name["pattern"], name["maxLength"]) == (filenames.NAME_PATTERN, 255)
    version = _parameter(file_path, "get", "version")["anyOf"][0]
    assert (version["minimum"], version["maximum"]) == (1, 2**31 - 1)
    since = _parameter("/api/v1/chat/workflows/{chat_id}/events", "get", "since")
    assert (since["minimum"], since["maximum"]) == (0, 2**62)
    cursor = _parameter("/api/v1/chat/workflows", "get", "cursor")
    assert cursor["pattern"] == "^[A-Za-z0-9_=-]*$"
    key = _parameter(EXECUTE, "post", "Idempotency-Key")
    assert (key["minLength"], key["maxLength"]) == (1, 200)


@settings(max_examples=2000, deadline=None)
@given(st.text(st.characters(max_codepoint=127), max_size=12))
def test_the_file_name_pattern_is_the_file_name_rules_for_ascii(name: str) -> None:
    assert (re.search(filenames.NAME_PATTERN, name) is not None) == (
        filenames.problem(name) is None
    )


def test_every_error_code_the_source_raises_is_catalogued() -> None:
    """Each ``code="..."`` the API layer, the services, the run's validation and the upload
    receiver raise is in error_codes.CODES (run errors of steps are another, open set)."""
    sources = [
        *SRC.joinpath("api").glob("*.py"),
        *SRC.joinpath("services").glob("*.py"),
        *(SRC / "runs" / name for name in ("validation.py", "submit.py", "dry_run.py")),
        SRC / "uploads.py",
        SRC / "filenames.py",
        SRC / "errors.py",
    ]
    raised = {
        code
        for path in sources
        for code in re.findall(r'code = "(\w+)"|code="(\w+)"', path.read_text())
        for code in code
        if code
    }
    raised -= {"bad_request", "conflict", "request_timeout", "unsupported_media_type"}
    raised -= {"unavailable", "insufficient_storage", "not_found", "internal_error"}
    assert raised - set(CODES) == set()


def test_every_route_lists_its_errors_with_their_codes() -> None:
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if int(status) < 400:
                    continue
                media = response["content"]["application/json"]
                assert media["schema"] == {"$ref": "#/components/schemas/ErrorResponse"}
                for code, example in media["examples"].items():
                    assert CODES[code][0] == int(status) or (code, status) == (
                        "workflow_not_found",
                        "422",
                    ), (path, method, code)
                    assert example["value"]["error"]["code"] == code
                    assert f"`{code}`" in response["description"]
    chat = DOCUMENT["paths"]["/api/v1/chat/workflows/{chat_id}"]["get"]["responses"]
    assert set(chat) == {"200", "401", "404", "413", "422", "503"}
    assert set(chat["404"]["content"]["application/json"]["examples"]) == {"chat_not_found"}


def test_keys_are_declared_and_keyless_routes_say_so() -> None:
    scheme = DOCUMENT["components"]["securitySchemes"]["HTTPBearer"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    health = DOCUMENT["paths"]["/api/v1/health"]["get"]
    assert health["security"] == [{}, {"HTTPBearer": []}]
    assert openapi.KEYLESS_RULE in health["description"]
    execute = DOCUMENT["paths"][EXECUTE]["post"]
    assert execute["security"] == [{"HTTPBearer": []}]
    assert openapi.KEY_RULE in execute["description"]
    assert "a server without keys answers without one" in openapi.KEY_RULE
    assert DOCUMENT["paths"]["/metrics"]["get"]["security"] == [{"HTTPBearer": []}]
    public = create_app(make_settings(Path("x"), metrics_public=True)).openapi()
    assert public["paths"]["/metrics"]["get"]["security"] == [{}, {"HTTPBearer": []}]


@pytest.mark.parametrize(
    ("path", "allow"),
    [
        ("/api/v1/chat/workflows", "GET, POST"),
        ("/api/v1/chat/workflows/0b7c0e7e-2c1a-4a6e-9a53-2f4c3f0a1b2c", "DELETE, GET, PATCH"),
        ("/api/v1/chat/workflows/x/files/a.csv", "DELETE, GET"),
        ("/api/v1/chat/workflows/x/messages", "GET, POST"),
        ("/api/v1/workflows/some-name", "DELETE, GET"),
        ("/api/v1/chat/workflows/x/execute", "POST"),
    ],
)
def test_405_allows_every_method_of_the_path(client: httpx.Client, path: str, allow: str) -> None:
    response = client.request("PUT", path)
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert response.json() == {
        "error": {"code": "method_not_allowed", "message": "Method Not Allowed", "details": None}
    }
