"""/docs and /redoc: served from the package with caching headers and the documented CSP,
referring to no other host, with VERSIONS.json true to the vendored files, all in the wheel.

tests/browser/test_docs_ui.py proves in Chromium that nothing else is fetched at run time.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from chatflow.app import create_app
from tests.support import LiveServer, folder_files, make_settings, run_server, wheel_files

ROOT = Path(__file__).resolve().parents[2]
DOCS_UI = ROOT / "src" / "chatflow" / "docs_ui"
ASSETS = DOCS_UI / "assets"
GUIDE = ROOT / "docs" / "docs-ui.md"
OWN_ASSETS = {"swagger-init.js", "favicon.svg"}  # ours; everything else comes from npm

_BASE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
POLICIES = {
    "/docs": _BASE_POLICY,
    "/redoc": _BASE_POLICY.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'").replace(
        "font-src 'self'", "font-src 'self' data:"
    ),
}
ASSET_REFERENCES = {
    "/docs": [
        "/docs/assets/favicon.svg",
        "/docs/assets/swagger-ui.css",
        "/docs/assets/swagger-ui-bundle.js",
        "/docs/assets/swagger-init.js",
    ],
    "/redoc": ["/docs/assets/favicon.svg", "/docs/assets/redoc.standalone.js"],
}
MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}


class _Tags(HTMLParser):
    """Every start tag of a page, with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(html)
    return parser.tags


def _asset_references(html: str) -> list[str]:
    """What the page loads: scripts, stylesheets, icons, images."""
    return [
        str(attrs.get("src") or attrs.get("href"))
        for tag, attrs in _tags(html)
        if tag in ("script", "link", "img") and (attrs.get("src") or attrs.get("href"))
    ]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_page_is_served_with_the_documented_policy(client: httpx.Client, page: str) -> None:
    response = client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-security-policy"] == POLICIES[page]
    assert f"`{POLICIES[page]}`" in GUIDE.read_text(encoding="utf-8")  # word for word


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_page_loads_nothing_from_another_host(client: httpx.Client, page: str) -> None:
    html = client.get(page).text
    assert re.findall(r"https?:|//[a-z]", html, flags=re.IGNORECASE) == []
    assert _asset_references(html) == ASSET_REFERENCES[page]
    assert "<script>" not in html  # no inline script: the policy would refuse it
    (spec_url,) = [
        attrs.get("data-spec-url") or attrs.get("spec-url")
        for _, attrs in _tags(html)
        if "data-spec-url" in attrs or "spec-url" in attrs
    ]
    assert spec_url == "/openapi.json"
    assert client.get(spec_url).json()["paths"]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_every_referenced_asset_is_served_cached_and_revalidated(
    client: httpx.Client, page: str
) -> None:
    for reference in _asset_references(client.get(page).text):
        response = client.get(reference)
        name = reference.rsplit("/", 1)[1]
        assert response.status_code == 200, reference
        assert response.headers["content-type"] == MEDIA_TYPES[Path(name).suffix]
        assert response.headers["cache-control"] == "public, max-age=3600"
        assert response.content == (ASSETS / name).read_bytes()
        etag = response.headers["etag"]
        assert etag == '"' + hashlib.sha256(response.content).hexdigest()[:32] + '"'
        again = client.get(reference, headers={"If-None-Match": etag})
        assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag)


def test_our_own_assets_name_no_host_but_the_svg_namespace(client: httpx.Client) -> None:
    hosts = {
        host
        for name in OWN_ASSETS
        for host in re.findall(r"https?://([^/\"'\s]+)", client.get(f"/docs/assets/{name}").text)
    }
    assert hosts == {"www.w3.org"}  # favicon.svg's xmlns: a name, never fetched
    assert "validatorUrl: null" in client.get("/docs/assets/swagger-init.js").text


def test_redoc_is_told_to_stay_local_and_show_whole_examples(client: httpx.Client) -> None:
    (redoc,) = [attrs for tag, attrs in _tags(client.get("/redoc").text) if tag == "redoc"]
    assert redoc == {
        "spec-url": "/openapi.json",
        "disable-telemetry": "true",
        "json-samples-expand-level": "all",
    }
    bundle = client.get("/docs/assets/redoc.standalone.js").content
    assert b"cdn.redoc.ly" not in bundle  # the sidebar logo, patched by the vendor script


@pytest.mark.parametrize(
    "target",
    [
        "/docs/assets/nope.js",
        "/docs/assets/VERSIONS.json",
        "/docs/assets/..%2FVERSIONS.json",
        "/docs/assets/..%2Fswagger.html",
        "/docs/assets/%2e%2e%2f%2e%2e%2fapi%2fdocs_ui.py",
    ],
)
def test_an_unknown_asset_is_a_json_404(client: httpx.Client, target: str) -> None:
    response = client.get(target)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] == "not_found"


def test_the_docs_need_no_api_key(tmp_path: Path) -> None:
    with run_server(make_settings(tmp_path / "data", api_keys="k1")) as live:
        assert _status(live, "/api/v1/operations") == 401
        for target in ("/docs", "/redoc", "/openapi.json", *ASSET_REFERENCES["/docs"]):
            assert _status(live, target) == 200, target


def test_behind_a_prefix_the_pages_point_under_it(tmp_path: Path) -> None:
    """With the ASGI root_path a proxy sets (uvicorn --root-path), every URL carries it."""

    async def fetch() -> str:
        app = create_app(make_settings(tmp_path / "data"))  # the pages need no lifespan
        transport = httpx.ASGITransport(app=app, root_path="/chatflow")
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            return (await http.get("/docs")).text

    html = asyncio.run(fetch())
    prefixed = ["/chatflow" + reference for reference in ASSET_REFERENCES["/docs"]]
    assert _asset_references(html) == prefixed
    assert 'data-spec-url="/chatflow/openapi.json"' in html


def _status(live: LiveServer, target: str) -> int:
    return httpx.get(live.url + target).status_code


def test_versions_json_matches_the_vendored_files() -> None:
    record = json.loads((DOCS_UI / "VERSIONS.json").read_text())
    packages = {entry["package"]: entry for entry in record["packages"]}
    assert sorted(packages) == ["redoc", "swagger-ui-dist"]
    vendored: set[str] = set()
    for entry in packages.values():
        assert re.fullmatch(r"\d+\.\d+\.\d+", entry["version"])
        assert re.fullmatch(r"sha512-[A-Za-z0-9+/]{86}==", entry["integrity"])
        assert "package/LICENSE" in [file["from"] for file in entry["files"].values()]
        for name, file in entry["files"].items():
            data = (ASSETS / name).read_bytes()
            assert hashlib.sha256(data).hexdigest() == file["sha256"], name
            vendored.add(name)
        for patch in entry["patches"]:
            data = (ASSETS / patch["file"]).read_bytes()
            assert patch["replace"].encode() not in data
            assert patch["with"].encode() in data
            upstream = entry["files"][patch["file"]]["upstream_sha256"]
            assert upstream != hashlib.sha256(data).hexdigest()
    assert packages["swagger-ui-dist"]["version"] in GUIDE.read_text(encoding="utf-8")
    assert packages["redoc"]["version"] in GUIDE.read_text(encoding="utf-8")
    assert {path.name for path in ASSETS.iterdir()} == vendored | OWN_ASSETS


def test_the_wheel_ships_the_docs_ui(tmp_path: Path) -> None:
    shipped = wheel_files(tmp_path, DOCS_UI)
    assert sorted(shipped) == sorted(folder_files(DOCS_UI))
    assert shipped == folder_files(DOCS_UI)
