"""Property: no upload or download name, however encoded, reads or writes outside the data dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import LiveServer, create_chat, make_settings, raw_get, run_server

pytestmark = pytest.mark.slow  # fuzzing: generated names

API = "/api/v1"
PIECES = st.sampled_from(
    [
        "..",
        ".",
        "/",
        "\\",
        "%2e",
        "%2f",
        "%252f",
        "\x00",
        "\u202e",
        "\uff0f",
        "\uff0e",
        "C:",
        "CON",
        ".csv",
        " ",
    ]
)
NAMES = st.lists(st.one_of(PIECES, st.text(max_size=8)), max_size=6).map("".join)


@pytest.fixture(scope="module")
def sandboxed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, Path]]:
    root = tmp_path_factory.mktemp("names")
    with run_server(make_settings(root / "data")) as server:
        yield server, root


def _outside(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if not p.is_relative_to(root / "data")}


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(name=NAMES)
def test_any_name_stays_inside_the_data_dir(sandboxed: tuple[LiveServer, Path], name: str) -> None:
    server, root = sandboxed
    before = _outside(root)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        chat_id = create_chat(client)
        boundary = "prop-boundary"
        body = (
            (
                f"--{boundary}\r\n"
                f'Content-Disposition: form-data; name="file"; filename="{name}"\r\n\r\n'
            ).encode("utf-8", "surrogatepass")
            + b"a,b\n1,2\r\n"
            + f"--{boundary}--\r\n".encode()
        )
        response = client.post(
            f"{API}/chat/workflows/{chat_id}/upload",
            content=body,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        assert response.status_code < 500, response.text
        if response.status_code == 201:
            stored = response.json()["data"][0]["filename"]
            assert "/" not in stored and "\\" not in stored and "\x00" not in stored
            got = client.get(f"{API}/chat/workflows/{chat_id}/files/{quote(stored, safe='')}")
            assert got.status_code == 200 and got.content == b"a,b\n1,2"
        status, text = raw_get(
            server.url, f"{API}/chat/workflows/{chat_id}/files/{quote(name, safe='')}"
        )
        # The server sees %2F decoded: an empty name, or one ending in "/", ends the URL in a
        # slash, and the router may redirect to the same URL without it (no file is served).
        slash = name == "" or name.endswith("/")
        allowed = {200, 400, 404} | ({307} if slash else set())
        assert status in allowed, (status, repr(name))
        assert "root:" not in text
    assert _outside(root) == before
    for path in (root / "data").rglob("*"):
        assert path.resolve().is_relative_to((root / "data").resolve())
