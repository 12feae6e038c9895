"""The chat page for everyone: the keyboard alone, a label on every control, a 375 px screen
without sideways scrolling, and progress that does not move the layout while it arrives."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.browser.conftest import Offline, new_context
from tests.browser.pages import ChatPage, sheet_rows
from tests.support import POSTAL_ROWS, LiveServer, write_xlsx

TAB_LIMIT = 120
# Every form control with no label, no aria-label and no labelled group around it.
UNLABELLED = """() => [...document.querySelectorAll("input, select, textarea, button")]
    .filter(e => !(e.labels && e.labels.length) && !e.getAttribute("aria-label")
                 && !(e.tagName === "BUTTON" && e.textContent.trim()))
    .map(e => e.outerHTML)"""
# Sizes of the run panel's parts, recorded on every progress update while the run is running.
WATCH_PROGRESS = """() => {
    window.__boxes = [];
    const parts = ["run-progress", "run-state", "run-step", "run-bar", "step-bar", "cancel",
                   "run-outcome"];
    const bar = document.getElementById("run-bar");
    new MutationObserver(() => {
        if (document.getElementById("run-state").textContent !== "running") return;
        window.__boxes.push({
            value: bar.value,
            boxes: parts.map(id => {
                const r = document.getElementById(id).getBoundingClientRect();
                return [r.x, r.y, r.width, r.height];
            }),
        });
    }).observe(bar, {attributes: true, attributeFilter: ["value"]});
}"""


@pytest.fixture(autouse=True)
def _nothing_leaves_loopback(offline: Offline) -> Iterator[None]:
    """Every test here, whatever it asserts itself: the page asked for nothing outside."""
    yield
    assert offline.blocked == []


def _tab_to(page: Page, target: Locator) -> None:
    """Press Tab until ``target`` has the focus (it must be reachable by the keyboard)."""
    for _ in range(TAB_LIMIT):
        if target.evaluate("e => e === document.activeElement"):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"{target} is not reachable with Tab")


def test_keyboard_only(chat_page: ChatPage, tmp_path: Path, offline: Offline) -> None:
    page = chat_page.page
    _tab_to(page, page.get_by_label("New chat title"))
    page.keyboard.type("by keyboard")
    page.keyboard.press("Enter")
    expect(page.get_by_label("Chat title", exact=True)).to_have_value("by keyboard")
    # Creating a chat puts the focus on its file input; the file itself comes from the OS dialog.
    expect(page.get_by_label("Choose files")).to_be_focused()
    page.get_by_label("Choose files").set_input_files(
        str(write_xlsx(tmp_path / "data.xlsx", POSTAL_ROWS))
    )
    chat_page.file_row("data.xlsx").wait_for()
    operation = page.get_by_label("Operation")
    _tab_to(page, operation)
    page.keyboard.type("excel/extract-columns")
    expect(operation).to_have_value("excel/extract-columns-to-file")
    _tab_to(page, page.get_by_role("button", name="Add step"))
    page.keyboard.press("Enter")
    step = chat_page.step(1)
    name_box = step.get_by_label("name", exact=True)
    expect(name_box).to_be_focused()  # the new step's first field
    page.keyboard.press("Space")
    expect(name_box).to_be_checked()
    page.keyboard.press("Space")
    expect(name_box).not_to_be_checked()
    _tab_to(page, page.get_by_role("button", name="Run", exact=True))
    page.keyboard.press("Space")
    chat_page.wait_state("completed")
    link = page.get_by_role("link", name="Download data_extract-columns.xlsx", exact=True)
    _tab_to(page, link)
    with page.expect_download() as info:
        page.keyboard.press("Enter")
    info.value.save_as(tmp_path / "out.xlsx")
    assert sheet_rows(tmp_path / "out.xlsx") == [["postal_code"], ["01234"], ["98765"], ["00501"]]
    assert offline.blocked == []


def test_every_control_has_a_label(chat_page: ChatPage, tmp_path: Path) -> None:
    page = chat_page.page
    for label in ("New chat title", "Create chat"):
        expect(page.get_by_label(label).or_(page.get_by_role("button", name=label))).to_be_visible()
    chat_page.create_chat("labels")
    chat_page.upload(write_xlsx(tmp_path / "data.xlsx", POSTAL_ROWS))
    for label in (
        "Chat title",
        "Message",
        "Choose files",
        "Input file",
        "Operation",
        "Workflow name",
        "Saved workflow",
        "Run progress",
        "Step progress",
    ):
        expect(page.get_by_label(label, exact=True)).to_have_count(1)
    # One step of every operation: each generated field is labelled.
    names = (
        page.get_by_label("Operation")
        .locator("option")
        .evaluate_all("options => options.map(o => o.value)")
    )
    assert len(names) >= 29
    for name in names:
        chat_page.add_step(name)
    expect(page.locator("#steps > li")).to_have_count(len(names))
    assert page.evaluate(UNLABELLED) == []
    assert page.get_by_label("Remove Duplicates").count() == 1


def test_a_375_px_screen_scrolls_only_down(
    browser: Browser, offline: Offline, page_server: LiveServer, tmp_path: Path
) -> None:
    context = new_context(browser, offline, viewport={"width": 375, "height": 740})
    try:
        chat = ChatPage(context.new_page(), page_server.url).open()
        width = "document.documentElement.scrollWidth"
        assert chat.page.evaluate(width) <= 375
        chat.create_chat("a rather long chat title that has to wrap on a narrow phone screen")
        wide = [
            [f"column_with_a_long_name_{i}" for i in range(12)],
            [f"value {i}" for i in range(12)],
        ]
        chat.upload(write_xlsx(tmp_path / "wide.xlsx", wide))
        chat.add_step("excel/preview")
        chat.add_step("excel/profile-columns")
        chat.page.get_by_role("button", name="Preview").click()
        expect(chat.page.locator("#preview-area table").first).to_be_visible()
        assert chat.page.evaluate(width) <= 375
        chat.run()
        chat.wait_state("completed")
        expect(chat.page.locator("#run-outcome table").first).to_be_visible()
        assert chat.page.evaluate(width) <= 375
        chat.page.screenshot(path=str(tmp_path / "375.png"), full_page=True)
    finally:
        context.close()
    assert offline.blocked == []


def test_progress_updates_do_not_move_the_layout(chat_page: ChatPage, tmp_path: Path) -> None:
    page = chat_page.page
    chat_page.create_chat("steady")
    chat_page.add_long_conversion(tmp_path / "big.csv", rows=200_000)
    page.evaluate(WATCH_PROGRESS)
    chat_page.run()
    chat_page.wait_state("completed")
    samples = page.evaluate("window.__boxes")
    values = [sample["value"] for sample in samples]
    assert len(set(values)) >= 3, values  # several different progress values were shown
    first = samples[0]["boxes"]
    assert [sample["boxes"] for sample in samples] == [first] * len(samples)
