"""The chat page's files over HTTP (no browser): its CSP, no inline script, every asset it
references served with an ETag and a 304, unknown ones a JSON 404, all of them in the wheel; and
renaming a chat, which the page needed from the API."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from chatflow.api.assets import content_security_policy
from chatflow.api.page import WEB_DIR
from tests.support import LiveServer, create_chat, folder_files, raw_get, wheel_files

ROOT = Path(__file__).resolve().parents[2]
CHATS = "/api/v1/chat/workflows"
# `import ... from "./x.js"` in the page's modules.
IMPORT = re.compile(r"""^import\s[^"']*["']\./([\w./-]+)["'];""", re.M)


class _Page(HTMLParser):
    """What index.html references, and any inline script or style it carries."""

    def __init__(self) -> None:
        super().__init__()
        self.references: list[str] = []
        self.inline: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        for attr in ("src", "href"):
            if named.get(attr):
                self.references.append(str(named[attr]))
        self.inline += [f"{tag} {name}" for name, _ in attrs if name == "style" or name[:2] == "on"]
        if tag == "style":
            self.inline.append("<style>")
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append(f"<script> {data.strip()[:40]}")


def _parsed(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def _modules() -> set[str]:
    """app.js and every module it imports, transitively."""
    found, todo = set(), ["app.js"]
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo += IMPORT.findall((WEB_DIR / name).read_text(encoding="utf-8"))
    return found


def test_the_page_is_served_with_its_policy(client: httpx.Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-security-policy"] == content_security_policy()
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-cache"
    assert response.content == (WEB_DIR / "index.html").read_bytes()
    policy = response.headers["content-security-policy"]
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy


def test_the_page_has_no_inline_script_or_style(client: httpx.Client) -> None:
    page = _parsed(client.get("/").text)
    assert page.inline == []
    for name in _modules():
        source = (WEB_DIR / name).read_text(encoding="utf-8")
        # Data reaches the page as text nodes only (dom.js); nothing parses HTML.
        assert "innerHTML" not in source and "insertAdjacentHTML" not in source, name
        assert "eval(" not in source and "new Function" not in source, name


def test_every_asset_the_page_uses_answers_with_an_etag_and_a_304(client: httpx.Client) -> None:
    page = _parsed(client.get("/").text)
    assert sorted(page.references) == ["/ui/app.js", "/ui/favicon.svg", "/ui/style.css"]
    names = {ref.removeprefix("/ui/") for ref in page.references} | _modules()
    assert names == {
        "app.js",
        "api.js",
        "chats.js",
        "dom.js",
        "favicon.svg",
        "files.js",
        "forms.js",
        "run.js",
        "style.css",
        "transcript.js",
        "workflow.js",
    }
    media = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
    for name in sorted(names):
        response = client.get(f"/ui/{name}")
        assert response.status_code == 200, name
        assert response.content == (WEB_DIR / name).read_bytes()
        assert response.headers["content-type"] == media.get(Path(name).suffix, "image/svg+xml")
        assert response.headers["cache-control"] == "public, max-age=3600"
        etag = response.headers["etag"]
        again = client.get(f"/ui/{name}", headers={"If-None-Match": etag})
        assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag)
    # Every file shipped is one the page uses: nothing stale rides along in the wheel.
    shipped = {p.relative_to(WEB_DIR).as_posix() for p in WEB_DIR.rglob("*") if p.is_file()}
    assert shipped == names | {"index.html"}


def test_the_page_itself_answers_304_when_unchanged(client: httpx.Client) -> None:
    etag = client.get("/").headers["etag"]
    again = client.get("/", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.headers["content-security-policy"] == content_security_policy()


@pytest.mark.parametrize(
    "target",
    ["/ui/nope.js", "/ui/index.html", "/ui/", "/ui/..%2f..%2fapi%2fpage.py", "/ui/../app.py"],
)
def test_an_unknown_asset_is_the_json_404(server: LiveServer, target: str) -> None:
    status, body = raw_get(server.url, target)
    assert status == 404, body
    assert httpx.Response(404, content=body).json()["error"]["code"] == "not_found"


def test_the_assets_are_in_the_wheel(tmp_path: Path) -> None:
    shipped = wheel_files(tmp_path, WEB_DIR)
    assert sorted(shipped) == sorted(folder_files(WEB_DIR))
    assert shipped == folder_files(WEB_DIR)


def test_a_chat_is_renamed(client: httpx.Client) -> None:
    chat_id = create_chat(client, "Q3")
    response = client.patch(f"{CHATS}/{chat_id}", json={"title": "Q3 <b>final</b>"})
    assert response.status_code == 200
    assert response.json()["data"]["title"] == "Q3 <b>final</b>"
    assert client.get(f"{CHATS}/{chat_id}").json()["data"]["title"] == "Q3 <b>final</b>"
    cleared = client.patch(f"{CHATS}/{chat_id.upper()}", json={"title": None})
    assert (cleared.status_code, cleared.json()["data"]["title"]) == (200, None)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"title": "x" * 201}, "validation_error"),
        ({"title": "x", "owner": "me"}, "validation_error"),
        ({}, "validation_error"),
        ({"title": 7}, "validation_error"),
    ],
)
def test_a_bad_rename_is_422(client: httpx.Client, body: dict[str, object], code: str) -> None:
    chat_id = create_chat(client, "kept")
    response = client.patch(f"{CHATS}/{chat_id}", json=body)
    assert (response.status_code, response.json()["error"]["code"]) == (422, code)
    assert client.get(f"{CHATS}/{chat_id}").json()["data"]["title"] == "kept"


def test_renaming_an_unknown_chat_is_404(client: httpx.Client) -> None:
    for chat_id in ("00000000-0000-0000-0000-000000000000", "not-a-uuid"):
        response = client.patch(f"{CHATS}/{chat_id}", json={"title": "x"})
        assert (response.status_code, response.json()["error"]["code"]) == (404, "chat_not_found")
