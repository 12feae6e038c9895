"""/docs and /redoc in a real Chromium with the network cut off: they render from the package.

Every request outside loopback is aborted and recorded (tests/browser/conftest.py); the page's
console is watched for Content-Security-Policy violations, which would mean a bundle tried
something the documented policy does not allow (docs/docs-ui.md).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import ConsoleMessage, Page, expect

from tests.browser.conftest import Offline
from tests.support import LiveServer

EXECUTE_PATH = "/api/v1/chat/workflows/{chat_id}/execute"
EXAMPLE_OPERATION = "excel/extract-columns-to-file"


@pytest.fixture
def problems(page: Page) -> Iterator[list[str]]:
    """CSP violations and uncaught errors the page reports while the test runs."""
    seen: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            seen.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: seen.append(f"uncaught: {error}"))
    yield seen


def test_swagger_ui_renders_offline_and_shows_the_execute_example(
    page: Page, server: LiveServer, offline: Offline, problems: list[str]
) -> None:
    page.goto(f"{server.url}/docs")
    execute = page.locator(f'.opblock-post:has([data-path="{EXECUTE_PATH}"])')
    expect(execute).to_have_count(1)
    expect(page.locator(".opblock")).to_have_count(len(_operations(page, server)))
    execute.locator(".opblock-summary").click()
    example = execute.locator(".opblock-section-request-body .highlight-code")
    expect(example).to_contain_text(f'"operation": "{EXAMPLE_OPERATION}"')
    expect(example).to_contain_text('"remove_duplicates": true')
    # The arguments' schema is one click away and names the step's fields.
    execute.locator(".opblock-section-request-body").get_by_text("Schema", exact=True).click()
    expect(execute.locator(".opblock-section-request-body .model-box")).to_contain_text("steps")
    expect(page.locator("link[rel=icon]")).to_have_attribute("href", "/docs/assets/favicon.svg")
    assert problems == []
    assert offline.blocked == []


def test_swagger_ui_try_it_out_calls_this_server(
    page: Page, server: LiveServer, offline: Offline, problems: list[str]
) -> None:
    page.goto(f"{server.url}/docs")
    health = page.locator('.opblock-get:has([data-path="/api/v1/health/live"])')
    health.locator(".opblock-summary").click()
    health.get_by_role("button", name="Try it out").click()
    health.get_by_role("button", name="Execute").click()
    live = health.locator(".live-responses-table")
    expect(live.locator("tbody .response-col_status")).to_have_text("200")
    expect(live.locator(".highlight-code").first).to_contain_text('"status": "ok"')
    assert problems == []
    assert offline.blocked == []


def test_redoc_renders_offline_and_shows_the_execute_example(
    page: Page, server: LiveServer, offline: Offline, problems: list[str]
) -> None:
    document = page.request.get(f"{server.url}/openapi.json").json()
    operations = [op for item in document["paths"].values() for op in item.values()]
    tags = {tag for op in operations for tag in op["tags"]}
    page.goto(f"{server.url}/redoc")
    menu = page.locator(".menu-content")
    for tag in tags:
        expect(menu.get_by_text(tag, exact=True)).to_be_visible()
    # ReDoc lists a tag's operations on the tag's page; the execute operation's page has the
    # request example, expanded to every level (json-samples-expand-level="all").
    menu.get_by_text(document["paths"][EXECUTE_PATH]["post"]["tags"][0], exact=True).click()
    page.get_by_text(EXECUTE_PATH, exact=True).first.click()
    sample = page.get_by_test_id("json-viewer").first
    expect(sample).to_contain_text(f'"operation": "{EXAMPLE_OPERATION}"')
    expect(sample).to_contain_text('"remove_duplicates": true')
    expect(page.get_by_text("the steps to run, in order")).to_be_visible()
    _leave(page)
    assert problems == []
    assert offline.blocked == []


def _leave(page: Page) -> None:
    """Tell the page it is being left, as a closing tab does, and let one task turn pass.

    ReDoc 3 batches its telemetry and sends it after 5 s or when the page is hidden or left;
    the page's ``disable-telemetry`` must stop it (were it sent, connect-src 'self' would block
    it, and the CSP error would land in ``problems`` before this returns).
    """
    page.evaluate(
        "() => new Promise(resolve => {"
        " window.dispatchEvent(new Event('pagehide'));"
        " document.dispatchEvent(new Event('pagehide'));"
        " setTimeout(resolve, 0); })"
    )


def _operations(page: Page, server: LiveServer) -> list[tuple[str, str]]:
    """(method, path) of every operation the OpenAPI document lists."""
    document = page.request.get(f"{server.url}/openapi.json").json()
    return [(method, path) for path, item in document["paths"].items() for method in item]
