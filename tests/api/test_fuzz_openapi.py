"""Schemathesis against the app's own OpenAPI document: no 5xx, no response off its schema.

Every operation of the document is fuzzed (examples, coverage and fuzzing phases, a fixed seed,
derandomized, ``MAX_EXAMPLES`` per operation) against a real uvicorn server on loopback. The
checks are exactly the ones the API promises: no server error, only documented status codes,
documented content types and headers, and bodies matching the documented schema.

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
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig

from chatflow.app import create_app
from tests.conftest import make_settings
from tests.support import LiveServer, run_server

pytestmark = pytest.mark.slow  # fuzzing

MAX_EXAMPLES = 25
SEED = 20240604
FILENAME = "people.csv"
WORKFLOW = "fuzz-postal-codes"
CSV = b"name,postal_code,city\nAna,01234,Lisbon\nBen,98765,Porto\nCy,01234,Lisbon\n"
STEPS = [
    {
        "operation": "excel/extract-columns-to-file",
        "arguments": {"columns": ["postal_code"], "remove_duplicates": True},
    }
]

DOCUMENT = create_app(make_settings(Path("unused-data-dir"))).openapi()
CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": SEED,
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True},
        # The promised checks only. Schemathesis' other checks judge things the API does not
        # promise (e.g. positive_data_acceptance calls a 400 for a made-up ?cursor= a failure,
        # allow_header_conformance wants Starlette's 405 to list every method of the path).
        # No operation is excluded.
        "checks": {
            "enabled": False,
            "not_a_server_error": {"enabled": True},
            "status_code_conformance": {"enabled": True},
            "content_type_conformance": {"enabled": True},
            "response_schema_conformance": {"enabled": True},
            "response_headers_conformance": {"enabled": True},
        },
    }
)
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)


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
    with run_server(make_settings(data_dir)) as server:
        yield server


@pytest.fixture(scope="module")
def resources(live: LiveServer) -> Iterator[Resources]:
    with httpx.Client(base_url=live.url, timeout=60) as http:
        yield Resources(http)


def test_served_document_is_the_one_fuzzed(live: LiveServer) -> None:
    served = httpx.get(f"{live.url}/openapi.json", timeout=30)
    assert served.status_code == 200
    assert served.json() == DOCUMENT


def _use_real_ids(case: schemathesis.Case) -> bool:
    """Half of the cases, decided by the generated path values (stable under replay)."""
    params = case.path_parameters or {}
    return bool(params) and zlib.crc32(repr(sorted(params.items())).encode()) % 2 == 0


@schema.parametrize()
def test_openapi(case: schemathesis.Case, live: LiveServer, resources: Resources) -> None:
    if _use_real_ids(case):
        resources.ensure()
        real = resources.real_values()
        assert case.path_parameters is not None
        for key in case.path_parameters:
            if key in real:
                case.path_parameters[key] = real[key]
    case.call_and_validate(base_url=live.url, timeout=60)
