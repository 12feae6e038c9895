"""The xlsx container gate and the sandboxed inspection child: hostile files are refused fast."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from chatflow.failures import StepFailed
from chatflow.spreadsheets import fork_server
from chatflow.spreadsheets.fork_server import Forked, ForkServer
from chatflow.spreadsheets.inspection import (
    GateLimits,
    check_xlsx_container,
    child_main,
    inspect_file,
)
from chatflow.spreadsheets.inspection_pool import inspect_once
from chatflow.spreadsheets.sandbox import InspectionRejected, interpret_exit, package_root
from tests.fixtures_util import (
    HOSTILE,
    SHEET_HEAD,
    make_csv,
    make_ooxml,
    make_xlsx,
    sheet_xml,
)

REFUSED = {
    "cell_flood_10m_cells.xlsx": "too_many_cells",
    "corners_a1_xfd1048576.xlsx": "too_many_cells",
    "empty_zero_bytes.xlsx": "empty_file",
    "encrypted_password.xlsx": "password_protected",
    "macro_enabled.xlsm": "macros_not_supported",
    "not_zip_plaintext.xlsx": "not_a_spreadsheet",
    "ole_cfb_header_only.xlsx": "unreadable_file",  # its FAT loops: calamine would not stop
    "png_renamed.xlsx": "not_a_spreadsheet",
    "sst_uniquecount_huge.xlsx": "too_many_cells",
    "truncated_half.xlsx": "unreadable_file",
    "truncated_sheet_xml.xlsx": "unreadable_file",
    "xml_billion_laughs_sharedstrings.xlsx": "xml_dtd_forbidden",
    "xml_billion_laughs_sheet.xlsx": "xml_dtd_forbidden",
    "xxe_etc_passwd_sharedstrings.xlsx": "xml_dtd_forbidden",
    "xxe_etc_passwd_sheet.xlsx": "xml_dtd_forbidden",
    "xxe_ssrf_external_dtd.xlsx": "xml_dtd_forbidden",
    "zip_not_ooxml.xlsx": "not_a_spreadsheet",
    "zipbomb_lying_size_header.xlsx": "zip_bomb",
    "zipbomb_sheet_1gib.xlsx": "zip_bomb",
}
LIMITS = GateLimits()


def _gate_code(path: Path, limits: GateLimits = LIMITS) -> str | None:
    try:
        check_xlsx_container(path, limits)
    except StepFailed as exc:
        return exc.code
    return None


def _sandbox(path: Path, kind: str = "xlsx", **kwargs: Any) -> dict[str, Any]:
    return asyncio.run(inspect_once(path, kind, **kwargs))


def _rejected(path: Path, kind: str = "xlsx", **kwargs: Any) -> InspectionRejected:
    with pytest.raises(InspectionRejected) as caught:
        _sandbox(path, kind, **kwargs)
    return caught.value


# --- the gate, in process (it never hands anything to calamine) -----------------------------


@pytest.mark.parametrize("name", sorted(set(REFUSED) - {"truncated_sheet_xml.xlsx"}))
@pytest.mark.slow  # zip bombs
def test_gate_refuses_hostile_containers(name: str) -> None:
    assert _gate_code(HOSTILE / name) == REFUSED[name]


def _cells(n_rows: int, n_cols: int) -> str:
    letters = [chr(65 + c) for c in range(n_cols)]
    return "".join(
        f'<row r="{r}">' + "".join(f'<c r="{col}{r}"><v>{r}</v></c>' for col in letters) + "</row>"
        for r in range(1, n_rows + 1)
    )


@pytest.mark.parametrize(
    ("cells", "code"),
    [
        ("<row r='1'><c r='A1'><v>1</v></c><c r='XFD1048576'><v>2</v></c></row>", "too_many_cells"),
        (
            '<row r="1"><c r = "A1"/></row><row r="9000000"><c r="B9000000"/></row>',
            "too_many_cells",
        ),
        ('<row r="1"><c t="n" r="ZZZZZZZZZZZZZZZZZZ1"/></row>', "too_many_cells"),
        ("<row><c><v>1</v></c></row>" * 2000, "too_many_cells"),  # 2000 cells > max_cells=1000
        ("<x:row><x:c><x:v>1</x:v></x:c></x:row>" * 2000, "too_many_cells"),
        ("<!DOCTYPE x [<!ENTITY a 'b'>]><row/>", "xml_dtd_forbidden"),
        ("<!-- a comment --><![CDATA[<x>]]>" + _cells(3, 3), None),
    ],
)
def test_gate_counts_what_is_really_there(tmp_path: Path, cells: str, code: str | None) -> None:
    path = make_ooxml(tmp_path / "g.xlsx", sheet_xml(cells))
    assert _gate_code(path, GateLimits(max_cells=1000)) == code


def test_gate_ignores_the_declared_dimension(tmp_path: Path) -> None:
    head = SHEET_HEAD + b'<dimension ref="A1:XFD1048576"/>'
    path = make_ooxml(tmp_path / "d.xlsx", sheet_xml(_cells(3, 2), head=head))
    assert _gate_code(path, GateLimits(max_cells=100)) is None


@pytest.mark.parametrize("split", range(1048570, 1048580))
def test_gate_sees_a_dtd_split_across_inflated_chunks(tmp_path: Path, split: int) -> None:
    # The scanner gets 1 MiB pieces; put "<!DOCTYPE" across the boundary at every offset.
    prefix = SHEET_HEAD + b"<sheetData>"
    padding = b" " * (split - len(prefix))
    sheet = prefix + padding + b"<!DOCTYPE x><row/></sheetData></worksheet>"
    path = make_ooxml(tmp_path / "s.xlsx", sheet, compression=zipfile.ZIP_STORED)
    assert _gate_code(path) == "xml_dtd_forbidden"


def test_gate_budget_and_ratio(tmp_path: Path) -> None:
    padded = sheet_xml(_cells(2, 2)).replace(b"<sheetData>", b" " * 3_000_000 + b"<sheetData>")
    path = make_ooxml(tmp_path / "big.xlsx", padded)
    assert _gate_code(path, GateLimits(max_uncompressed_mb=1)) == "zip_bomb"
    assert _gate_code(path, GateLimits(max_uncompressed_mb=10)) is None
    bomb = sheet_xml(_cells(1, 1)).replace(b"<sheetData>", b" " * 40_000_000 + b"<sheetData>")
    assert _gate_code(make_ooxml(tmp_path / "bomb.xlsx", bomb)) == "zip_bomb"  # ~1000:1


def test_gate_refuses_macros_unmarked_utf16_parts_and_odd_zips(tmp_path: Path) -> None:
    sheet = sheet_xml(_cells(2, 2))
    vba = make_ooxml(tmp_path / "m.xlsx", sheet, extra={"XL/VbaProject.BIN": b"\0" * 10})
    assert _gate_code(vba) == "macros_not_supported"
    # XML allows UTF-16 with a byte-order mark (SharePoint writes it); without one it is refused.
    utf16 = make_ooxml(tmp_path / "u.xlsx", sheet.decode().encode("utf-16"))
    assert _gate_code(utf16) is None
    no_bom = make_ooxml(tmp_path / "n.xlsx", sheet.decode().encode("utf-16-le"))
    assert _gate_code(no_bom) == "unreadable_file"
    stored = make_ooxml(tmp_path / "s.xlsx", sheet, compression=zipfile.ZIP_STORED)
    assert _gate_code(stored) is None
    with zipfile.ZipFile(tmp_path / "bz.xlsx", "w", zipfile.ZIP_BZIP2) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
    assert _gate_code(tmp_path / "bz.xlsx") == "unreadable_file"


def test_inspect_file_describes_the_first_sheet(tmp_path: Path) -> None:
    path = make_xlsx(tmp_path / "t.xlsx", {"A": [["x", "y"], ["1", "2"], ["3", "4"]], "B": []})
    assert inspect_file(path, "xlsx") == {
        "kind": "xlsx",
        "sheets": ["A", "B"],
        "columns": ["x", "y"],
        "row_count": 2,
    }
    empty_first = make_xlsx(tmp_path / "e.xlsx", {"Blank": [], "Data": [["a"], ["1"]]})
    assert inspect_file(empty_first, "xlsx")["columns"] == []
    csv = make_csv(tmp_path / "t.csv", "a;b\n1;2\n")
    assert inspect_file(csv, "csv") == {"sheets": [], "columns": ["a", "b"], "row_count": 1}
    big = make_csv(tmp_path / "big.csv", "a,b\n" + "1,2\n" * 600)
    with pytest.raises(StepFailed) as caught:
        inspect_file(big, "csv", limits=GateLimits(max_cells=1000))
    assert caught.value.code == "too_many_cells"


def test_main_prints_one_json_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = make_csv(tmp_path / "ok.csv", "a\n1\n")
    assert child_main(["csv", str(good)]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "ok": True,
        "info": {"sheets": [], "columns": ["a"], "row_count": 1},
    }
    bad = make_csv(tmp_path / "bad.csv", 'a\n"open\n')
    assert child_main(["--max-cells", "10", "csv", str(bad)]) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert (verdict["ok"], verdict["code"], verdict["details"]) == (
        False,
        "malformed_csv",
        {"line": 2},
    )
    assert child_main(["xlsx", str(tmp_path / "missing.xlsx")]) == 0
    assert json.loads(capsys.readouterr().out)["code"] == "unreadable_file"


# --- the sandbox ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(REFUSED))
@pytest.mark.slow  # zip bombs
def test_sandbox_refuses_each_hostile_fixture(name: str) -> None:
    rejected = _rejected(HOSTILE / name)
    assert rejected.code == REFUSED[name], rejected.message
    assert rejected.message and "root:" not in rejected.message


def test_sandbox_accepts_legitimate_workbooks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTHONPATH", raising=False)  # the child must find chatflow on its own
    assert _sandbox(HOSTILE / "control_valid.xlsx") == {
        "kind": "xlsx",
        "sheets": ["Sheet1"],
        "columns": ["id", "name"],
        "row_count": 1,
    }
    full_grid = _sandbox(HOSTILE / "dimension_claims_full_grid.xlsx")
    assert (full_grid["columns"], full_grid["row_count"]) == (["a", "b"], 1)
    malformed = _rejected(HOSTILE / "csv_malformed.csv", "csv")
    assert (malformed.code, malformed.details) == ("malformed_csv", {"line": 4})


def test_a_parser_abort_is_a_rejection_not_a_crash() -> None:
    # With the gate's cell limit out of the way calamine tries to allocate 549 GB and aborts.
    rejected = _rejected(HOSTILE / "corners_a1_xfd1048576.xlsx", max_cells=10**15)
    assert rejected.code == "parser_crashed" and "SIGABRT" in rejected.message


def test_a_tiny_memory_cap_is_a_rejection(tmp_path: Path) -> None:
    small = make_csv(tmp_path / "small.csv", "a\n1\n")
    assert _sandbox(small, "csv", memory_mb=48)["row_count"] == 1  # the child itself fits
    big = make_csv(tmp_path / "big.csv", "a\n" + "1\n" * 16_000_000)  # 32 MB, read whole
    assert _rejected(big, "csv", memory_mb=48).code in {"parser_crashed", "file_too_complex"}


def _fake_child(monkeypatch: pytest.MonkeyPatch, code: str) -> None:
    """Forked children run ``code`` instead of the inspection."""
    real = fork_server._command
    monkeypatch.setattr(fork_server, "_command", lambda memory_mb: [*real(memory_mb), code])


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)", "parser_crashed"),
        ("import os, signal; os.kill(os.getpid(), signal.SIGXCPU)", "inspection_timeout"),
        ("raise SystemExit(3)", "parser_crashed"),
        ("print('not json')", "inspection_failed"),
        ('print(\'{"ok": false, "code": "zip_bomb", "message": "m"}\')', "zip_bomb"),
    ],
)
def test_child_failures_become_rejections(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, code: str, expected: str
) -> None:
    _fake_child(monkeypatch, code)
    assert _rejected(tmp_path / "x.xlsx").code == expected


def _spy_on_children(monkeypatch: pytest.MonkeyPatch) -> list[Forked]:
    forked: list[Forked] = []
    real = ForkServer.fork

    async def spy(self: ForkServer) -> Forked:
        child = await real(self)
        forked.append(child)
        return child

    monkeypatch.setattr(ForkServer, "fork", spy)
    return forked


def _assert_gone(pid: int) -> None:
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_timeout_kills_and_reaps_the_child(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _fake_child(monkeypatch, "import time; time.sleep(60)")
    spawned = _spy_on_children(monkeypatch)
    started = time.monotonic()
    assert _rejected(tmp_path / "x.xlsx", timeout_s=0.5).code == "inspection_timeout"
    assert time.monotonic() - started < 5
    assert spawned[0].returncode == -signal.SIGKILL
    _assert_gone(spawned[0].pid)


def test_cancelling_the_caller_kills_the_child(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _fake_child(monkeypatch, "import time; time.sleep(60)")
    spawned = _spy_on_children(monkeypatch)

    async def scenario() -> None:
        task = asyncio.create_task(inspect_once(tmp_path / "x.xlsx", "xlsx"))
        deadline = time.monotonic() + 10
        while not spawned:  # the spy sees the child as soon as it is started
            assert time.monotonic() < deadline, "no inspection child was started"
            await asyncio.sleep(0.01)
        assert spawned[0].returncode is None
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert spawned[0].returncode is not None
    _assert_gone(spawned[0].pid)


def test_interpret_exit() -> None:
    assert interpret_exit(0, b'noise\n{"ok": true, "info": {"x": 1}}\n', b"") == {"x": 1}
    for returncode, stdout in [(0, b""), (0, b'{"ok": true}'), (0, b"[1]"), (None, b"")]:
        with pytest.raises(InspectionRejected):
            interpret_exit(returncode, stdout, b"")
    with pytest.raises(InspectionRejected) as caught:
        interpret_exit(-signal.SIGABRT, b"", b"memory allocation of 549755813888 bytes failed")
    assert caught.value.code == "parser_crashed"


def test_the_inspection_child_imports_only_what_reading_needs() -> None:
    """Every upload uses a fresh interpreter: polars (about 0.3 s of CPU to import), pydantic
    and the operation registry stay out of the inspection's imports."""
    code = (
        "import sys, chatflow.spreadsheets.inspection; "
        "print(sorted(m for m in ('polars', 'fastexcel', 'pydantic', "
        "'chatflow.operations.registry', 'fastapi', 'sqlalchemy', 'xlsxwriter') "
        "if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": package_root()}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
