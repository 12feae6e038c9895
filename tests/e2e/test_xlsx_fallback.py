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
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support import chatflow_process, free_ports, numbered_output, write_xlsx

BLOCK = "import sys\nsys.modules['rustpy_xlsxwriter'] = None  # import raises ImportError\n"
FALLBACK_WARNING = "CHATFLOW_XLSX_WRITER=rustpy-xlsxwriter but rustpy-xlsxwriter is not installed"


@contextmanager
def _serve(data_dir: Path, log: Path, env: dict[str, str]) -> Iterator[str]:
    """``chatflow serve`` on a free port with default settings but ``env``; its base URL."""
    (port,) = free_ports(1)
    with chatflow_process(data_dir, log, port=port, env=env):
        yield f"http://127.0.0.1:{port}"


def _numbered_output(base_url: str, source: Path, out: Path) -> tuple[list[list[object]], str]:
    """excel/add-column (row numbers) on ``source``: the output's cells and sheet XML."""
    cells = numbered_output(base_url, source, out)
    with zipfile.ZipFile(out) as archive:
        return cells, archive.read("xl/worksheets/sheet1.xml").decode()  # type: ignore[return-value]


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
    with _serve(tmp_path / "data", log, {"PYTHONPATH": pythonpath}) as url:
        cells, xml = _numbered_output(url, source, tmp_path / "out.xlsx")
    assert cells == EXPECTED
    assert "<v>1</v>" in xml and "<v>1.0</v>" not in xml  # xlsxwriter wrote it
    warnings = [line for line in log.read_text().splitlines() if FALLBACK_WARNING in line]
    assert len(warnings) == 1, log.read_text()
    assert "CHATFLOW_XLSX_WRITER=xlsxwriter" in warnings[0]  # it says how to silence it


def test_an_explicit_xlsxwriter_setting_is_honoured(tmp_path: Path, source: Path) -> None:
    log = tmp_path / "server.log"
    with _serve(tmp_path / "data", log, {"CHATFLOW_XLSX_WRITER": "xlsxwriter"}) as url:
        cells, xml = _numbered_output(url, source, tmp_path / "out.xlsx")
    assert cells == EXPECTED
    assert "<v>1</v>" in xml and "<v>1.0</v>" not in xml
    assert FALLBACK_WARNING not in log.read_text()
