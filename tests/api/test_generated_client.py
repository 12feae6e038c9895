"""A Python client generated from the served OpenAPI document type-checks and runs the seed's
flow: create a chat, upload data.xlsx, extract its postal codes, download the result.

The client is generated at test time into ``tmp_path`` by openapi-python-client (about 2 s)
and checked with ``mypy --strict`` together with the script that uses it
(client_flow/seed_flow.py, about 7 s): a step's arguments are typed per operation there, so a
document that lost them would fail the type check, not only the run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openpyxl
import pytest

from tests.support import POSTAL_ROWS, LiveServer, make_settings, run_server, write_xlsx

KEY = "client-key"
FLOW = Path(__file__).parent / "client_flow" / "seed_flow.py"
# No post hooks: they would run ruff over the generated code, which the test does not need.
CONFIG = "package_name_override: chatflow_client\npost_hooks: []\n"


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data_dir = tmp_path_factory.mktemp("client") / "data"
    with run_server(make_settings(data_dir, api_keys=KEY)) as server:
        yield server


def _run(args: list[str], cwd: Path) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{args[:3]}: {done.stdout}\n{done.stderr}"
    return done.stdout


def test_a_generated_client_type_checks_and_runs_the_seed_flow(
    keyed: LiveServer, tmp_path: Path
) -> None:
    document = httpx.get(f"{keyed.url}/openapi.json", timeout=30).json()
    (tmp_path / "openapi.json").write_text(json.dumps(document))
    (tmp_path / "config.yaml").write_text(CONFIG)
    generator = str(Path(sys.executable).with_name("openapi-python-client"))
    _run(
        [generator, "generate", "--path", "openapi.json", "--output-path", "chatflow_client"]
        + ["--meta", "none", "--config", "config.yaml"],
        tmp_path,
    )
    shutil.copy(FLOW, tmp_path / "seed_flow.py")
    mypy = [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / ".mypy")]
    _run([*mypy, "chatflow_client", "seed_flow.py"], tmp_path)

    source = write_xlsx(tmp_path / "data.xlsx", POSTAL_ROWS)
    out = tmp_path / "out.xlsx"
    printed = _run(
        [sys.executable, "seed_flow.py", keyed.url, KEY, str(source), str(out)], tmp_path
    )
    assert json.loads(printed) == {
        "status": "completed",
        "outputs": ["data_extract-columns.xlsx"],
    }
    sheet = openpyxl.load_workbook(out, read_only=True).active
    assert sheet is not None
    rows = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert rows == [["postal_code"], ["01234"], ["98765"], ["00501"]]
