"""File names refuse characters that are invisible or change how the rest displays.

Refused (400 ``invalid_filename`` for uploads, 422 ``invalid_arguments`` naming the argument
for ``output`` and ``name_prefix``): Unicode categories Cc, Cf, Cs, Zl, Zp and Cn.  Split-file
parts named after cell values replace them with '_' instead, and their files are written.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatflow import filenames
from chatflow.errors import BadRequest
from tests.support import create_chat, make_settings, run_server, upload

API = "/api/v1"
REFUSED = ["Cc", "Cf", "Cs", "Zl", "Zp", "Cn"]
# The characters issue 11 names, and neighbours of theirs.
NAMED = [
    "\x85",  # NEXT LINE
    "\x9b",  # C1 control sequence introducer
    "\u2028",  # LINE SEPARATOR
    "\u2029",  # PARAGRAPH SEPARATOR
    "\u200b",  # ZERO WIDTH SPACE
    "\u200c",  # ZERO WIDTH NON-JOINER
    "\u200d",  # ZERO WIDTH JOINER
    "\u2060",  # WORD JOINER
    "\ufeff",  # ZERO WIDTH NO-BREAK SPACE (BOM)
    "\u00ad",  # SOFT HYPHEN
    "\u200e",  # LEFT-TO-RIGHT MARK
    "\u200f",  # RIGHT-TO-LEFT MARK
    "\u061c",  # ARABIC LETTER MARK
    "\u202a",  # LEFT-TO-RIGHT EMBEDDING
    "\u202e",  # RIGHT-TO-LEFT OVERRIDE
    "\u2066",  # LEFT-TO-RIGHT ISOLATE
    "\u2069",  # POP DIRECTIONAL ISOLATE
    "\U000e0041",  # TAG LATIN CAPITAL LETTER A
    "\u0378",  # unassigned
]
# Visible characters a name may hold, however unusual.
ALLOWED = ["é", "e\u0301", "ß", "日本", "שלום", "😀", "\u00a0", "\u3000", "\ue000", "_-()[]"]


# --- the rule -----------------------------------------------------------------------------


@pytest.mark.parametrize("char", NAMED, ids=lambda c: f"U+{ord(c):04X}")
def test_each_named_character_is_refused_anywhere_in_a_name(char: str) -> None:
    for name in (f"{char}report.csv", f"rep{char}ort.csv", f"report{char}.csv"):
        with pytest.raises(BadRequest) as caught:
            filenames.validate(name)
        assert caught.value.code == "invalid_filename"
        assert caught.value.status == 400
        assert f"U+{ord(char):04X}" in caught.value.message or "bidirectional" in (
            caught.value.message
        )


@pytest.mark.parametrize("text", ALLOWED)
def test_visible_characters_stay_allowed(text: str) -> None:
    assert filenames.problem(f"a{text}b.csv") is None


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    char=st.characters(categories=REFUSED),  # type: ignore[arg-type]
    before=st.text(st.characters(categories=["L", "N"]), max_size=5),
    after=st.text(st.characters(categories=["L", "N"]), max_size=5),
)
def test_every_character_of_the_refused_categories_is_refused(
    char: str, before: str, after: str
) -> None:
    assert unicodedata.category(char) in REFUSED
    reason = filenames.problem(f"{before}{char}{after}.csv")
    assert reason is not None
    assert f"U+{ord(char):04X}" in reason or "bidirectional" in reason, reason
    assert filenames.scrub(f"{before}{char}{after}") == f"{before}_{after}"


@settings(max_examples=300, deadline=None, derandomize=True)
@given(name=st.text(max_size=12))
def test_an_accepted_name_holds_no_refused_character(name: str) -> None:
    if filenames.problem(name) is None:
        folded = unicodedata.normalize("NFKC", name)
        assert all(unicodedata.category(ch) not in REFUSED for ch in name + folded)
    assert filenames.first_hidden(filenames.scrub(name)) is None
    assert len(filenames.scrub(name)) == len(name)


def test_a_stored_name_is_looked_up_but_never_a_control_or_surrogate() -> None:
    # Names stored before these characters were refused stay reachable for download/delete.
    assert filenames.validate("rep\u200bort.csv", stored=True) == "rep\u200bort.csv"
    for bad in ("rep\x00ort.csv", "rep\x7fort.csv", "rep\udcffort.csv", "rep\u202eort.csv"):
        with pytest.raises(BadRequest):
            filenames.validate(bad, stored=True)


def test_undecodable_bytes_are_named_in_plain_json_text() -> None:
    with pytest.raises(BadRequest) as caught:
        filenames.validate("a\udcff.csv")
    assert caught.value.details == {"filename": "a\\udcff.csv"}
    assert "U+DCFF (a lone surrogate)" in caught.value.message


# --- through the API ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """One live server for the module: every test works in chats of its own."""
    with (
        run_server(make_settings(tmp_path_factory.mktemp("names") / "data")) as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
    ):
        yield http


def _raw_upload(client: httpx.Client, chat_id: str, disposition: str) -> httpx.Response:
    boundary = "names-boundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; {disposition}\r\n\r\n'
    ).encode("utf-8", "surrogateescape") + f"a,b\n1,2\r\n--{boundary}--\r\n".encode()
    return client.post(
        f"{API}/chat/workflows/{chat_id}/upload",
        content=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    return error


def test_uploads_with_hidden_characters_are_refused_and_store_nothing(api: httpx.Client) -> None:
    client = api
    chat_id = create_chat(client)
    for char in ("\x85", "\u2028", "\u2029", "\u200b", "\ufeff", "\u200f", "\u061c", "\u2066"):
        name = f"sales{char}.csv"
        plain = _raw_upload(client, chat_id, f'filename="{name}"')
        error = _error(plain, 400, "invalid_filename")
        assert error["details"] == {"filename": name}
        # The same name in RFC 2231 form, percent-encoded UTF-8.
        encoded = _raw_upload(client, chat_id, f"filename*=UTF-8''{quote(name)}")
        _error(encoded, 400, "invalid_filename")
    # Bytes their encoding cannot decode: refused rather than stored with U+FFFD for them.
    undecodable = _raw_upload(client, chat_id, 'filename="sales\udcff.csv"')
    assert _error(undecodable, 400, "invalid_filename")["details"] == {
        "filename": "sales\ufffd.csv"
    }
    _error(_raw_upload(client, chat_id, "filename*=UTF-8''sales%FF.csv"), 400, "invalid_filename")
    assert client.get(f"{API}/chat/workflows/{chat_id}/files").json()["data"] == []
    for disposition in ('filename="sales é.csv"', "filename*=ISO-8859-1''caf%E9.csv"):
        ok = _raw_upload(client, chat_id, disposition)
        assert ok.status_code == 201, ok.text
    files = client.get(f"{API}/chat/workflows/{chat_id}/files").json()["data"]
    assert sorted(f["filename"] for f in files) == ["café.csv", "sales é.csv"]
    hidden = quote("sales\u200b.csv")
    missing = client.get(f"{API}/chat/workflows/{chat_id}/files/{hidden}")
    _error(missing, 404, "file_not_found")  # a lookup is not refused: no such file


def _execute(
    client: httpx.Client, chat_id: str, step: dict[str, Any], dry_run: bool = False
) -> httpx.Response:
    params = {"dry_run": "true"} if dry_run else {"wait": "true"}
    return client.post(
        f"{API}/chat/workflows/{chat_id}/execute",
        params=params,
        json={"input": "sales.csv", "steps": [step]},
    )


def _sales(tmp_path: Path, regions: list[str]) -> Path:
    path = tmp_path / "sales.csv"
    lines = ["region,amount", *(f"{region},{i}" for i, region in enumerate(regions, start=1))]
    path.write_bytes("\n".join(lines).encode("utf-8") + b"\n")
    return path


@pytest.mark.parametrize(
    ("operation", "arguments", "argument"),
    [
        ("excel/sort", {"by": [{"column": "amount"}]}, "output"),
        ("excel/convert", {"format": "csv"}, "output"),
        ("excel/extract-columns-to-file", {"columns": ["region"]}, "output"),
        ("excel/split-file", {"by": "column", "column": "region", "as": "sheets"}, "output"),
        ("excel/split-file", {"by": "column", "column": "region"}, "name_prefix"),
    ],
)
def test_output_names_with_hidden_characters_are_refused_before_running(
    api: httpx.Client, tmp_path: Path, operation: str, arguments: dict[str, Any], argument: str
) -> None:
    client = api
    chat_id = create_chat(client)
    assert upload(client, chat_id, _sales(tmp_path, ["north"])).status_code == 201
    for char in ("\u200b", "\u2028", "\x85", "\u200e", "\ufeff", "\u2066"):
        name = f"out{char}put.csv" if arguments.get("format") == "csv" else f"out{char}put.xlsx"
        value = f"sales{char}" if argument == "name_prefix" else name
        step = {"operation": operation, "arguments": {**arguments, argument: value}}
        for dry_run in (True, False):
            error = _error(_execute(client, chat_id, step, dry_run), 422, "invalid_arguments")
            assert error["message"].startswith(f"steps[0] ({operation}): {argument}:"), error
            assert f"U+{ord(char):04X}" in error["message"] or "bidirectional" in error["message"]
    assert client.get(f"{API}/chat/workflows/{chat_id}/runs").json()["data"] == []
    files = client.get(f"{API}/chat/workflows/{chat_id}/files").json()["data"]
    assert [f["filename"] for f in files] == ["sales.csv"]


def test_split_parts_named_after_values_replace_hidden_characters(
    api: httpx.Client, tmp_path: Path
) -> None:
    client = api
    chat_id = create_chat(client)
    regions = ["north\u200b", "a\u2028b", "\u202eevil", "x\x85y", "zwj\u200d\u2060", "plain"]
    assert upload(client, chat_id, _sales(tmp_path, regions)).status_code == 201
    step = {
        "operation": "excel/split-file",
        "arguments": {"by": "column", "column": "region", "format": "csv"},
    }
    response = _execute(client, chat_id, step)
    assert response.status_code == 200, response.text
    run = response.json()["data"]
    assert run["status"] == "completed", run
    names = ["sales_north_.csv", "sales_a_b.csv", "sales__evil.csv", "sales_x_y.csv"]
    names += ["sales_zwj__.csv", "sales_plain.csv"]
    assert [o["filename"] for o in run["outputs"]] == names
    for output, (amount, region) in zip(run["outputs"], enumerate(regions, start=1), strict=True):
        body = httpx.get(output["download_url"]).content.decode("utf-8")
        # The part's cells keep the value exactly; only its file name changed.
        assert body == f'region,amount\n"{region}",{amount}\n' or body == (
            f"region,amount\n{region},{amount}\n"
        )
