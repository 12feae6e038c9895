"""A server without rustpy-xlsxwriter falls back to xlsxwriter by itself, and says so once.

``chatflow serve`` runs as a child process with a ``sitecustomize`` on its PYTHONPATH that
makes ``import rustpy_xlsxwriter`` fail, as on a machine where it is not installed; its worker
processes inherit the PYTHONPATH, so they cannot import it either.  Nothing in this test
process is patched.  A second server, with the package importable but
``CHATFLOW_XLSX_WRITER=xlsxwriter`` set in its environment, shows that the setting is
honoured.  Which engine wrote an output shows in its XML: rust_xlsxwriter spells a whole
number ``1.0``, xlsxwriter ``1``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import openpyxl
import psutil
import pytest

from tests.support import create_chat, free_ports, upload, wait_until_serving, write_xlsx

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
BLOCK = "import sys\nsys.modules['rustpy_xlsxwriter'] = None  # import raises ImportError\n"
FALLBACK_WARNING = "CHATFLOW_XLSX_WRITER=rustpy-xlsxwriter but rustpy-xlsxwriter is not installed"


@contextmanager
def _serve(
    data_dir: Path, log: Path, env_overrides: dict[str, str]
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``chatflow serve`` on a free port with default settings but ``env_overrides``; always
    stopped, with its worker processes."""
    (port,) = free_ports(1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATFLOW_")}
    env.update(env_overrides)
    command = [sys.executable, "-m", "chatflow", "serve", "--port", str(port), "--ws-port", "0"]
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [*command, "--data-dir", str(data_dir)],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
        )
    server = psutil.Process(process.pid)
    children: list[psutil.Process] = []
    try:
        wait_until_serving(port, process, START_TIMEOUT_S, log)
        yield f"http://127.0.0.1:{port}", process
    finally:
        with suppress(psutil.NoSuchProcess):
            children = server.children(recursive=True)
        if process.poll() is None:
            process.terminate()
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT_S)
        _, alive = psutil.wait_procs(children, timeout=10)
        for child in alive:
            with suppress(psutil.NoSuchProcess):
                child.kill()


def _numbered_output(base_url: str, source: Path, out: Path) -> tuple[list[list[object]], str]:
    """Run excel/add-column (row numbers) on ``source``; the output's cells and sheet XML."""
    numbering = {"operation": "excel/add-column", "arguments": {"name": "n", "row_number": True}}
    with httpx.Client(base_url=base_url, timeout=120) as client:
        chat_id = create_chat(client)
        upload(client, chat_id, source)
        run = client.post(
            f"/api/v1/chat/workflows/{chat_id}/execute",
            params={"wait": "true"},
            json={"steps": [numbering]},
        ).json()["data"]
        assert run["status"] == "completed", run
        out.write_bytes(client.get(run["outputs"][0]["download_url"]).content)
    sheet = openpyxl.load_workbook(out).active
    cells = [[(c.value, c.data_type) for c in row] for row in sheet.rows]
    with zipfile.ZipFile(out) as archive:
        return cells, archive.read("xl/worksheets/sheet1.xml").decode()


EXPECTED = [
    [("customer_id", "s"), ("city", "s"), ("n", "s")],
    [("00042", "s"), ('=HYPERLINK("http://x")', "s"), (1, "n")],
    [("7", "s"), ("Zürich", "s"), (2, "n")],
]


@pytest.fixture
def source(tmp_path: Path) -> Path:
    rows = [["customer_id", "city"], ["00042", '=HYPERLINK("http://x")'], ["7", "Zürich"]]
    return write_xlsx(tmp_path / "in.xlsx", rows)


def test_without_the_rust_package_the_server_writes_with_xlsxwriter_and_warns_once(
    tmp_path: Path, source: Path
) -> None:
    block = tmp_path / "block"
    block.mkdir()
    (block / "sitecustomize.py").write_text(BLOCK)
    pythonpath = os.pathsep.join(p for p in (str(block), os.environ.get("PYTHONPATH")) if p)
    check = subprocess.run(
        [sys.executable, "-c", "import rustpy_xlsxwriter"],
        env={**os.environ, "PYTHONPATH": pythonpath},
        capture_output=True,
        text=True,
    )
    assert check.returncode == 1 and "ModuleNotFoundError" in check.stderr  # the block works
    log = tmp_path / "server.log"
    with _serve(tmp_path / "data", log, {"PYTHONPATH": pythonpath}) as (url, _):
        cells, xml = _numbered_output(url, source, tmp_path / "out.xlsx")
    assert cells == EXPECTED
    assert "<v>1</v>" in xml and "<v>1.0</v>" not in xml  # xlsxwriter wrote it
    warnings = [line for line in log.read_text().splitlines() if FALLBACK_WARNING in line]
    assert len(warnings) == 1, log.read_text()
    assert "CHATFLOW_XLSX_WRITER=xlsxwriter" in warnings[0]  # it says how to silence it


def test_an_explicit_xlsxwriter_setting_is_honoured(tmp_path: Path, source: Path) -> None:
    log = tmp_path / "server.log"
    with _serve(tmp_path / "data", log, {"CHATFLOW_XLSX_WRITER": "xlsxwriter"}) as (url, _):
        cells, xml = _numbered_output(url, source, tmp_path / "out.xlsx")
    assert cells == EXPECTED
    assert "<v>1</v>" in xml and "<v>1.0</v>" not in xml
    assert FALLBACK_WARNING not in log.read_text()
