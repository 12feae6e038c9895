"""The chat page on a server that requires API keys: it asks for one, keeps it for the tab's
session, sends it on every call, and opens the socket with ``?token=``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, WebSocket, expect

from tests.browser.conftest import Offline, new_context
from tests.browser.pages import ChatPage, sheet_rows
from tests.support import POSTAL_ROWS, LiveServer, make_settings, run_server, write_xlsx

KEY = "page-test-key-1"


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data_dir = tmp_path_factory.mktemp("keyed") / "data"
    with run_server(make_settings(data_dir, api_keys=f"{KEY},another-key")) as live:
        yield live


def test_a_key_protected_server(
    browser: Browser, offline: Offline, keyed_server: LiveServer, tmp_path: Path
) -> None:
    context = new_context(browser, offline, viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        sockets: list[WebSocket] = []
        page.on("websocket", lambda ws: sockets.append(ws))
        page.goto(keyed_server.url + "/")
        key = page.get_by_label("API key")
        expect(key).to_be_focused()
        expect(page.locator("#app")).to_be_hidden()
        key.fill("not-the-key")
        page.get_by_role("button", name="Use key").click()
        expect(page.locator("#key-error")).to_have_text("That key was not accepted.")
        key.fill(KEY)
        page.get_by_role("button", name="Use key").click()
        expect(page.locator("#key-form")).to_be_hidden()
        chat = ChatPage(page, keyed_server.url)
        chat.create_chat("keyed")
        assert [ws.url.split("?")[1] for ws in sockets] == [f"since=0&batch=true&token={KEY}"]
        chat.upload(write_xlsx(tmp_path / "data.xlsx", POSTAL_ROWS))
        chat.add_step("excel/extract-columns-to-file")
        chat.run()
        chat.wait_state("completed")
        # A plain link cannot carry the key: the page fetches the file with it.
        out = chat.download("Download data_extract-columns.xlsx", tmp_path / "out.xlsx")
        assert sheet_rows(out) == [["postal_code"], ["01234"], ["98765"], ["00501"]]
        # Kept for the session: a reload does not ask again.
        page.reload()
        expect(page.locator("#chat-list .title").filter(has_text="keyed")).to_have_count(1)
        expect(page.locator("#key-form")).to_be_hidden()
        assert page.evaluate("sessionStorage.getItem('chatflow.api-key')") == KEY
        # ...but another tab, a session of its own, does.
        other_tab = context.new_page()
        other_tab.goto(keyed_server.url + "/")
        expect(other_tab.get_by_label("API key")).to_be_visible()
    finally:
        context.close()
    assert offline.blocked == []
