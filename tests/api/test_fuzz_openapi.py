"""Schemathesis, every check, against the app's own OpenAPI document: the document and the server
agree.

Every operation of the document is fuzzed (examples, coverage and fuzzing phases, a fixed seed,
derandomized, ``MAX_EXAMPLES`` per operation) with all of schemathesis' checks against a real
uvicorn server on loopback that has API keys configured, plus one of ours: an error answer
carries a code its route documents for that status; then sequences of calls that feed one
answer's ids into the next (schemathesis' stateful phase) get the same checks. The few
exclusions are in ``CONFIG``, each with its reason.

The document is built once at import (``create_app(...).openapi()``, which opens nothing) so
pytest gets one item per operation; ``test_served_document_is_the_one_fuzzed`` proves it equals
what the live server serves at ``/openapi.json``. (``schemathesis.pytest.
from_fixture`` would load it from the URL directly, but it is broken on pytest 9: it writes
``request.node._nodeid``, which pytest 9 no longer has.)

Random path ids almost always give 404, which only exercises the not-found branch. So for
half of the cases (chosen from the generated values, hence deterministic and stable when
Hypothesis replays a failure) the chat id, run id, file name and saved workflow name are
replaced by real ones: a chat holding an uploaded csv, a finished run and a saved workflow,
recreated before the case if an earlier case deleted them.

A route under a chat that does not exist answers 404 ``chat_not_found`` before it reads the
JSON body (the chat is a dependency, resolved before the body is validated). The examples and
coverage phases keep an operation's path fixed and vary the body: for execute and for saving
a workflow, thousands of cases whose path went unreplaced were all that one 404. Such a case
is sent once per distinct request head (path, query, headers, cookies, media type); a case
that differs from one already answered so only in its JSON body is not sent again.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig

from chatflow.app import create_app
from tests.support import LiveServer, make_settings, run_server

pytestmark = pytest.mark.slow  # fuzzing

MAX_EXAMPLES = 25
STATEFUL_EXAMPLES = 25  # sequences of calls...
STATEFUL_STEPS = 10  # ...of up to this many calls each (about 10 s in all)
SEED = 20240604
KEY = "fuzz-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
FILENAME = "people.csv"
WORKFLOW = "fuzz-postal-codes"
CSV = b"name,postal_code,city\nAna,01234,Lisbon\nBen,98765,Porto\nCy,01234,Lisbon\n"
STEPS = [
    {
        "operation": "excel/extract-columns-to-file",
        "arguments": {"columns": ["postal_code"], "remove_duplicates": True},
    }
]
SETTINGS = {"api_keys": KEY}
DOCUMENT = create_app(make_settings(Path("unused-data-dir"), **SETTINGS)).openapi()

# positive_data_acceptance: a request valid by the document gets 2xx, or 401/403/404/409 (the
# defaults). Where the answer also depends on what the server holds, or on content no schema
# can state, the statuses that say so are accepted too, for that operation only:
STATE_AND_CONTENT = [
    # execute: the input file and the columns the first step names must exist in the chat,
    # a saved workflow named in the body must exist (422 input_not_found, column_not_found,
    # workflow_not_found), and some arguments carry rules JSON Schema cannot state (a valid
    # regular expression, 'value' or 'template' but not both): 422 invalid_arguments.
    ("POST", "/api/v1/chat/workflows/{chat_id}/execute", ["422"]),
    # saving steps: the same argument rules (422 invalid_arguments).
    ("POST", "/api/v1/chat/workflows/{chat_id}/workflows", ["422"]),
    # upload: a part the document allows (any bytes, any name the client picks) is refused when
    # its name is not a spreadsheet's (415 unsupported_file_type) or its bytes are not one (422
    # not_a_spreadsheet, ...): the document cannot say "the bytes of a valid xlsx". And the
    # limit of 20 parts counts the delimiter field with the files (400 too_many_parts), a sum
    # JSON Schema cannot state: the document bounds the files alone.
    ("POST", "/api/v1/chat/workflows/{chat_id}/upload", ["400", "415", "422"]),
    # a cursor is valid only if this server handed it out (400 invalid_cursor).
    ("GET", "/api/v1/chat/workflows", ["400"]),
]
DEFAULT_ACCEPTED = ["2xx", "401", "403", "404", "409"]
CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": SEED,
        # ASCII strings: file names then meet a pattern that is exact for ASCII (filenames.py);
        # beyond it the server refuses invisible characters no portable pattern can name.
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "codec": "ascii"},
        "checks": {"enabled": True},
        "operations": [
            {
                "include-name": f"{method} {path}",
                "checks": {
                    "positive_data_acceptance": {"expected-statuses": DEFAULT_ACCEPTED + extra}
                },
            }
            for method, path, extra in STATE_AND_CONTENT
        ]
        + [
            {
                # In sequences, saving a workflow right after creating its chat with a made-up
                # run_id answers 404 run_not_found (the body's run, not the chat, is missing);
                # ensure_resource_availability reads any 404 there as the new chat missing.
                "include-name": "POST /api/v1/chat/workflows/{chat_id}/workflows",
                "checks": {"ensure_resource_availability": {"enabled": False}},
            }
        ],
    }
)
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)


@schema.auth()
class ApiKey:
    """The key every case sends; ignored_auth also sends each without it and with a wrong one
    (an auth provider rather than a fixed header, so schemathesis knows the key is real)."""

    def get(self, case: schemathesis.Case, ctx: Any) -> str:
        return KEY

    def set(self, case: schemathesis.Case, data: str, ctx: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


def _documented_codes(operation: dict[str, Any], status: int) -> set[str] | None:
    """The error codes the document lists for ``status`` (None: the status is not listed)."""
    response = operation.get("responses", {}).get(str(status))
    if response is None:
        return None
    return set(response.get("content", {}).get("application/json", {}).get("examples", {}))


@schemathesis.check
def documented_error_code(ctx: Any, response: Any, case: schemathesis.Case) -> bool | None:
    """An error answer's code is one its route lists for that status."""
    if response.status_code < 400 or response.status_code == 405:
        return None  # 405: a method the document does not list, so no route to ask
    operation = DOCUMENT["paths"][case.operation.path][case.operation.method.lower()]
    codes = _documented_codes(operation, response.status_code)
    if codes is None:
        return None  # status_code_conformance reports it
    code = response.json()["error"]["code"]
    # A dry run's step failure answers 422 with its run error's code: an open set, documented
    # as such on the dry_run parameter.
    dry_run = str((case.query or {}).get("dry_run", "")).lower() in {"true", "1", "yes", "on"}
    if dry_run and response.status_code == 422 and case.operation.path.endswith("/execute"):
        return None
    assert code in codes, f"{response.status_code} {code!r} is not among {sorted(codes)}"
    return None


@dataclass
class Resources:
    """A chat with a file, a finished run and a saved workflow; recreated when deleted."""

    http: httpx.Client
    chat_id: str = ""
    run_id: str = ""

    def ensure(self) -> None:
        chat = self.http.get(f"/api/v1/chat/workflows/{self.chat_id}") if self.chat_id else None
        if chat is None or chat.status_code == 404:
            created = self.http.post("/api/v1/chat/workflows", json={"title": "fuzz"})
            assert created.status_code == 201, created.text
            self.chat_id, self.run_id = created.json()["data"]["chat_id"], ""
            files: list[dict[str, object]] = []
        else:
            assert chat.status_code == 200, chat.text
            files = chat.json()["data"]["files"]
            if not any(run["run_id"] == self.run_id for run in chat.json()["data"]["runs"]):
                self.run_id = ""
        if not any(f["filename"] == FILENAME for f in files):
            uploaded = self.http.post(
                f"/api/v1/chat/workflows/{self.chat_id}/upload",
                files={"file": (FILENAME, CSV, "text/csv")},
            )
            assert uploaded.status_code == 201, uploaded.text
        if not self.run_id:
            run = self.http.post(
                f"/api/v1/chat/workflows/{self.chat_id}/execute?wait=true",
                json={"input": FILENAME, "steps": STEPS},
            )
            assert run.status_code == 200, run.text
            self.run_id = run.json()["data"]["run_id"]
        if self.http.get(f"/api/v1/workflows/{WORKFLOW}").status_code == 404:
            saved = self.http.post(
                f"/api/v1/chat/workflows/{self.chat_id}/workflows",
                json={"name": WORKFLOW, "steps": STEPS},
            )
            assert saved.status_code == 201, saved.text

    def real_values(self) -> dict[str, str]:
        return {
            "chat_id": self.chat_id,
            "run_id": self.run_id,
            "filename": FILENAME,
            "name": WORKFLOW,
        }


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data_dir: Path = tmp_path_factory.mktemp("fuzz") / "data"
    with run_server(make_settings(data_dir, **SETTINGS)) as server:
        yield server


@pytest.fixture(scope="module")
def resources(live: LiveServer) -> Iterator[Resources]:
    with httpx.Client(base_url=live.url, timeout=60, headers=AUTH) as http:
        yield Resources(http)


def test_served_document_is_the_one_fuzzed(live: LiveServer) -> None:
    served = httpx.get(f"{live.url}/openapi.json", timeout=30)
    assert served.status_code == 200
    assert served.json() == DOCUMENT


def _use_real_ids(case: schemathesis.Case) -> bool:
    """Half of the cases, decided by the generated path values (stable under replay)."""
    params = case.path_parameters or {}
    return bool(params) and zlib.crc32(repr(sorted(params.items())).encode()) % 2 == 0


def _head(case: schemathesis.Case) -> str:
    """The request but its body: what a route that has not found its chat answers from."""
    parts = (case.path_parameters, case.query, case.headers, case.cookies)
    sorted_parts = [sorted((part or {}).items()) for part in parts]
    return repr((case.operation.label, case.media_type, *sorted_parts))


@pytest.fixture(scope="module")
def chat_not_found() -> set[str]:
    """Heads of JSON requests already answered 404 chat_not_found (module docstring)."""
    return set()


@schema.parametrize()
def test_openapi(
    case: schemathesis.Case, live: LiveServer, resources: Resources, chat_not_found: set[str]
) -> None:
    if _use_real_ids(case):
        resources.ensure()
        real = resources.real_values()
        assert case.path_parameters is not None
        for key in case.path_parameters:
            if key in real:
                case.path_parameters[key] = real[key]
    json_body = case.media_type == "application/json"
    if json_body and _head(case) in chat_not_found:
        return  # the same 404, whatever the body
    response = case.call_and_validate(base_url=live.url, timeout=60)
    not_found = response.status_code == 404 and response.json()["error"]["code"]
    if json_body and not_found == "chat_not_found":
        chat_not_found.add(_head(case))


def test_stateful_sequences(live: LiveServer) -> None:
    """The same checks over sequences of calls that feed one answer's ids into the next call
    (the links schemathesis infers: create a chat, then upload into it, run, list...)."""

    class Sequences(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"base_url": live.url, "timeout": 60}

    Sequences.run(
        settings=hypothesis.settings(
            max_examples=STATEFUL_EXAMPLES,
            stateful_step_count=STATEFUL_STEPS,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(hypothesis.HealthCheck),
        )
    )
