"""A real browser for the page and docs tests: Playwright driving Debian's Chromium, offline.

Playwright's own browser download is not available here, so the tests drive the system's
Chromium (``CHATFLOW_BROWSER``, default /usr/bin/chromium). Without it, or without the
``playwright`` package, the tests skip with the reason; with ``CHATFLOW_REQUIRE_BROWSER=1``
(``.ci/run``) they fail instead.

Every page is offline: a request to any host but the test server's loopback address is aborted
and recorded in ``blocked``, so a test can also prove the page asked for nothing outside.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

from tests.browser.pages import ChatPage
from tests.support import LiveServer, make_settings, run_server

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page, Route

CHROMIUM = Path(os.environ.get("CHATFLOW_BROWSER", "/usr/bin/chromium"))
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
EXPECT_TIMEOUT_MS = 20_000
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}


def _missing(reason: str) -> None:
    if os.environ.get("CHATFLOW_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (CHATFLOW_REQUIRE_BROWSER is set)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium per test module.

    Not per session: Playwright's sync API keeps its event loop running in this thread until it
    stops, and every later test in the process that calls ``asyncio.run`` would fail.
    """
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        _missing("the playwright package is not installed")
        raise
    if not CHROMIUM.exists():
        _missing(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set CHATFLOW_BROWSER)")
    # expect() waits on the page's own work (a dry run, an upload's inspection): on a busy
    # 2-core machine running the whole suite that can take longer than its 5 s default.
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Offline:
    """What the page tried to reach outside loopback (each aborted)."""

    blocked: list[str] = field(default_factory=list)

    def route(self, route: Route) -> None:
        url = route.request.url
        host = urlsplit(url).hostname or ""
        if urlsplit(url).scheme in ("data", "blob") or host in LOCAL_HOSTS:
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort("internetdisconnected")


@pytest.fixture
def offline() -> Offline:
    return Offline()


def new_context(browser: Browser, offline: Offline, **options: object) -> BrowserContext:
    """A fresh browser profile whose every request outside loopback is aborted."""
    context = browser.new_context(**options)  # type: ignore[arg-type]
    context.route("**/*", offline.route)
    return context


@pytest.fixture
def page(browser: Browser, offline: Offline) -> Iterator[Page]:
    """A page in a fresh, offline profile at a desktop size."""
    context = new_context(browser, offline, viewport={"width": 1280, "height": 900})
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture(scope="module")
def page_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server for a module's page tests (each test opens its own chat)."""
    data_dir = tmp_path_factory.mktemp("page-server") / "data"
    # The slower xlsx engine: a cancel must reach a run while it still writes.
    with run_server(make_settings(data_dir, xlsx_writer="xlsxwriter")) as live:
        yield live


@pytest.fixture
def chat_page(page: Page, page_server: LiveServer) -> ChatPage:
    """The chat page of the module's server, loaded."""
    return ChatPage(page, page_server.url).open()
