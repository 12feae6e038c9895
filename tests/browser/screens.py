"""``make screenshots``: the chat page's main states as PNGs in docs/ (1280x800, and a phone).

Run as ``python -m tests.browser.screens [OUT_DIR]``: it starts a server of its own on a
temporary data dir, drives the page with the system's Chromium (offline, like the tests) and
writes ``page-*.png``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.browser.conftest import CHROMIUM, LAUNCH_ARGS, Offline, new_context
from tests.browser.pages import ChatPage
from tests.support import LiveServer, make_settings, run_server, write_xlsx

DOCS = Path(__file__).resolve().parents[2] / "docs"
ORDERS = [
    ["order_id", "customer", "postal_code", "city", "amount"],
    [1001, "Ana Costa", "01234", "Lisbon", 120.5],
    [1002, "Ben Okafor", "98765", "Porto", 80],
    [1003, "Cy Lindqvist", "01234", "Lisbon", 42.25],
    [1004, "Dee Marsh", "00501", "Holtsville", 310],
    [1005, "Eve Tanaka", "98765", "Porto", 15.75],
]


def _shoot(page: Page, out: Path, name: str, anchor: str | None = None) -> None:
    if anchor:
        page.evaluate(f"document.querySelector({anchor!r}).scrollIntoView({{block: 'start'}})")
    else:
        page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(out / name))
    sys.stdout.write(f"{out / name}\n")


def _desktop(browser: Browser, server: LiveServer, data: Path, out: Path) -> None:
    context = new_context(browser, Offline(), viewport={"width": 1280, "height": 800})
    page = context.new_page()
    chat = ChatPage(page, server.url).open()
    chat.create_chat("Q3 orders")
    chat.upload(data)
    page.get_by_label("Message").fill("keep one row per postal code, then count the cities")
    page.get_by_role("button", name="Send").click()
    chat.add_step("excel/extract-columns-to-file").get_by_label("city").check()
    counts = chat.add_step("excel/value-counts")
    counts.get_by_label("Column", exact=True).select_option("city")
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#preview-area table").first).to_be_visible()
    _shoot(page, out, "page-chat.png")
    _shoot(page, out, "page-preview.png", "#preview")
    chat.run()
    chat.wait_state("completed")
    _shoot(page, out, "page-run.png", "#run-heading")
    counts.get_by_label("Column", exact=True).select_option("amount")
    page.get_by_role("button", name="Remove step 1").click()
    chat.add_step("excel/select-columns")
    page.get_by_role("button", name="Move step 2 up").click()  # it keeps no amount column
    chat.run()
    chat.wait_state("failed")
    _shoot(page, out, "page-failed.png", "#run-heading")
    context.close()


def _phone_and_key(browser: Browser, out: Path, data: Path) -> None:
    with tempfile.TemporaryDirectory() as keyed_dir:
        settings = make_settings(Path(keyed_dir) / "data", api_keys="screenshot-key")
        with run_server(settings) as keyed:
            context = new_context(browser, Offline(), viewport={"width": 375, "height": 740})
            page = context.new_page()
            page.goto(keyed.url + "/")
            expect(page.get_by_label("API key")).to_be_visible()
            _shoot(page, out, "page-key-mobile.png")
            page.get_by_label("API key").fill("screenshot-key")
            page.get_by_role("button", name="Use key").click()
            chat = ChatPage(page, keyed.url)
            chat.create_chat("On a phone")
            chat.upload(data)
            chat.add_step("excel/extract-columns-to-file")
            chat.run()
            chat.wait_state("completed")
            _shoot(page, out, "page-mobile.png", "#run-heading")
            context.close()


def main(out: Path = DOCS) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        data = write_xlsx(Path(tmp) / "orders.xlsx", ORDERS)
        with (
            run_server(make_settings(Path(tmp) / "data")) as server,
            sync_playwright() as playwright,
        ):
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS
            )
            try:
                _desktop(browser, server, data, out)
                _phone_and_key(browser, out, data)
            finally:
                browser.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DOCS)
